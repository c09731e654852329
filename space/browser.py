"""The leaderboard table as the browser gets it: the whole study table is small, so it is shipped once
per page load (and per "Reload results") as compact columnar JSON, and ``space/static/leaderboard.js``
filters, searches, sorts, pages and exports it without a server round trip per event.

The semantics are those of ``space.table`` (the reference the browser tests compare against): text
columns are dictionary-encoded with their dictionaries in Python's sort order, so the browser sorts
codes and gets Python's order; gains are ``raw - reference[base model]``."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from space.config import SpaceConfig
from space.data import NAME, TEXT_COLUMNS, Results
from space.table import AVERAGE, CHOICE_FILTERS, GAIN, IDENTITY_DISPLAY, RANK, RAW, Filters, averaged_columns
from space.urlstate import PARAMS, choices

STATIC = Path(__file__).resolve().parent / "static"
# Columns shipped as (sorted dictionary, per-row codes): few distinct values, many rows.
CODED_COLUMNS = ("base_model", "base_model_name", "language", "dataset", "method", "lr_schedule")
CODED_COLUMNS += ("license", "repo_id", "revision", "link")
NUMBER_COLUMNS = ("data_size", "epoch", "parameters")
DIGITS = 4  # shipped score precision: the table shows 2 decimals, the CSV 3


def static_text(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def _coded(values: np.ndarray) -> dict[str, list]:
    """Dictionary encoding with the dictionary in sorted order (so code order is value order); None
    stays null."""
    present = sorted({v for v in values.tolist() if v is not None})
    index = {v: i for i, v in enumerate(present)}
    return {"values": present, "codes": [None if v is None else index[v] for v in values.tolist()]}


def _numbers(values: np.ndarray) -> list[float | None]:
    values = np.asarray(values, dtype="float64").round(DIGITS)
    return [None if np.isnan(v) else v for v in values.tolist()]


def _links(results: Results, config: SpaceConfig) -> np.ndarray:
    repos, revisions = results.display["repo_id"], results.display["revision"]
    return np.array(
        [config.model_link(r, v) for r, v in zip(repos.tolist(), revisions.tolist(), strict=True)],
        dtype=object,
    )


def gain_reference(results: Results) -> dict[str, list[list[float | None]]]:
    """Per base model (the codes of ``base_model_name``) and score column: what a gain subtracts from
    a raw score, recovered from the app's gains so the browser shows the same numbers."""
    names = _coded(results.display["base_model_name"])
    codes = np.array([-1 if c is None else c for c in names["codes"]])
    difference = results.raw_values - results.gain_values
    reference = []
    for code in range(len(names["values"])):
        rows = difference[codes == code]
        present = ~np.isnan(rows)
        counts = present.sum(axis=0)
        sums = np.where(present, rows, 0.0).sum(axis=0)
        mean = np.divide(sums, counts, out=np.full(rows.shape[1], np.nan), where=counts > 0)
        reference.append(_numbers(mean))
    return {"base_model_name": reference}


def filters_state(filters: Filters) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(filters).items()}


def table_payload(
    results: Results, config: SpaceConfig, filters: Filters, problems: list[str] | None = None
) -> str:
    """The JSON the page's table script reads (``props.value``): data, the view to start from, and the
    vocabulary of the URL parameters. One string, so Gradio does not walk millions of list items."""
    display = results.display
    columns: dict[str, Any] = {c: _coded(display[c]) for c in CODED_COLUMNS if c != "link"}
    columns["link"] = _coded(_links(results, config))
    columns.update({c: _numbers(display[c].astype(float)) for c in NUMBER_COLUMNS})
    columns["model_id"] = display["model_id"].tolist()
    columns[NAME] = display[NAME].tolist()
    scores = [
        {
            "name": c.name,
            "benchmark": c.benchmark,
            "shots": c.shots,
            "family": c.family,
            "scale": c.scale,
        }
        for c in results.score_columns
    ]
    payload = {
        "rows": len(results.leaderboard),
        "columns": columns,
        "raw": [_numbers(results.raw_values[:, i]) for i in range(len(scores))],
        "gain_reference": gain_reference(results)["base_model_name"],
        "scores": scores,
        "averaged_all": averaged_columns(results, results.score_names),
        "choices": choices(results),
        "filters": filters_state(filters),
        "defaults": filters_state(Filters()),
        "problems": list(problems or []),
        "vocabulary": {
            "raw": RAW,
            "gain": GAIN,
            "average": AVERAGE,
            "rank": RANK,
            "identity": IDENTITY_DISPLAY,
            "choice_filters": CHOICE_FILTERS,
            "params": PARAMS,
            "search_columns": list(TEXT_COLUMNS),
        },
        "page_size": config.page_size,
    }
    # NaN never reaches JSON: every float went through _numbers.
    return json.dumps(payload, separators=(",", ":"), allow_nan=False)
