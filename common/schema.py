"""The one long results table every stage reads and writes (``scores.parquet``).

One row per (model, benchmark, shots, metric). Scores use the released table's scales: accuracy-like
metrics in percent (0-100), MT-Bench on its 1-10 judge scale, AlpacaEval as a win rate in percent.
Base models are rows with ``dataset == "pretrain"``, ``method == "base"`` and ``epoch == 0``.
See README "Results schema" for the meaning of each column."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from common.catalog import JUDGED_BENCHMARKS
from common.errors import InputError
from common.io import write_parquet

# column -> pandas dtype. Identity first, then the measurement, then provenance.
SCORE_COLUMNS: dict[str, str] = {
    "model_id": "string",  # unique per evaluated model: "<run_id>/epoch-03", or the base model id
    "run_id": "string",  # training job id; null for base models and imported rows without one
    "base_model": "string",  # Hugging Face id of the base model
    "base_model_name": "string",  # the name the released table uses ("OLMo-7B-hf")
    "dataset": "string",  # SFT dataset, "all", "w/o-<dataset>", or "pretrain" for base models
    "method": "string",  # "full" | "lora" | "base"
    "data_size": "Int64",  # training samples; 0 for base models
    "epoch": "Int64",  # 0 for base models
    "lr_schedule": "string",  # "cosine" | "constant" | "none"
    "benchmark": "string",  # lowercase benchmark name ("gsm8k", "mtbench", "demo_arithmetic")
    "shots": "Int64",
    "metric": "string",  # "acc", "exact_match", "pass@1", "total", "writing", "win_rate", ...
    "value": "float64",
    "stderr": "float64",
    "n_samples": "Int64",
    "source": "string",  # "lm-eval" | "released-table" | "llm-judge"
    "harness_version": "string",
    "judge": "string",  # judged benchmarks (MT-Bench, AlpacaEval): the judge model that scored them
    "evaluated_at": "string",  # ISO 8601 UTC
    "model_path": "string",  # where the weights are: local folder, or "repo@revision"
    "flags": "string",  # data-quality findings attached to this row, ";"-separated; "" when clean
}

IDENTITY_COLUMNS: tuple[str, ...] = (
    "model_id",
    "run_id",
    "base_model",
    "base_model_name",
    "dataset",
    "method",
    "data_size",
    "epoch",
    "lr_schedule",
)
KEY_COLUMNS: tuple[str, ...] = ("model_id", "benchmark", "shots", "metric")
SOURCES = ("lm-eval", "released-table", "llm-judge")
METHODS = ("full", "lora", "base")


class SchemaError(InputError):
    """A scores table that does not follow the schema."""


def empty_scores() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in SCORE_COLUMNS.items()})


def conform(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with exactly the schema's columns and dtypes, or raise naming what is wrong."""
    missing = [
        c
        for c in SCORE_COLUMNS
        if c not in frame.columns
        and c not in ("flags", "stderr", "n_samples", "run_id", "model_path", "judge")
    ]
    if missing:
        raise SchemaError(f"scores table is missing columns {missing}; expected {list(SCORE_COLUMNS)}")
    frame = frame.copy()
    for column, dtype in SCORE_COLUMNS.items():
        if column not in frame.columns:
            frame[column] = "" if column == "flags" else None
        frame[column] = frame[column].astype(dtype)
    bad_methods = sorted(set(frame["method"].dropna()) - set(METHODS))
    if bad_methods:
        raise SchemaError(f"unknown method values {bad_methods}; allowed: {list(METHODS)}")
    duplicated = frame.duplicated(list(KEY_COLUMNS), keep=False)
    if duplicated.any():
        example = frame.loc[duplicated, list(KEY_COLUMNS)].iloc[0].to_dict()
        raise SchemaError(f"{int(duplicated.sum())} rows share a key {KEY_COLUMNS}, e.g. {example}")
    return frame[list(SCORE_COLUMNS)].reset_index(drop=True)


def read_scores(path: str | os.PathLike[str]) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        return empty_scores()
    return conform(pd.read_parquet(path))


def upsert_scores(path: str | os.PathLike[str], new_rows: pd.DataFrame) -> pd.DataFrame:
    """Merge ``new_rows`` into the parquet file at ``path``: rows with the same key are replaced,
    never duplicated. The file is rewritten atomically."""
    new_rows = conform(new_rows)
    existing = read_scores(path)
    merged = pd.concat([existing, new_rows], ignore_index=True)
    merged = merged.drop_duplicates(list(KEY_COLUMNS), keep="last")
    merged = conform(merged.sort_values(list(KEY_COLUMNS), kind="stable"))
    write_parquet(path, merged)
    return merged


@dataclass(frozen=True)
class WideColumn:
    """A leaderboard column decoded: judged benchmarks carry a metric, the others a shot count."""

    benchmark: str
    shots: int | None
    metric: str | None


def wide_column(benchmark: str, shots: int, metric: str) -> str:
    """Column name of a score in the wide (one row per model) leaderboard table."""
    if benchmark in JUDGED_BENCHMARKS:
        return f"{benchmark}-{metric}"
    return f"{benchmark}-{int(shots)}shot"


def parse_wide_column(name: str) -> WideColumn:
    """``wide_column`` read back: ``gsm8k-4shot`` -> (gsm8k, 4, None); ``mtbench-total`` -> (mtbench,
    None, total)."""
    head, _, tail = name.rpartition("-")
    if head and tail.endswith("shot") and tail[: -len("shot")].isdigit():
        return WideColumn(head, int(tail[: -len("shot")]), None)
    benchmark, _, metric = name.partition("-")
    return WideColumn(benchmark, None, metric or None)


def to_wide(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per model, identity columns then one column per (benchmark, shots) score."""
    scores = conform(scores)
    scores = scores.assign(
        column=[
            wide_column(b, s, m)
            for b, s, m in zip(scores["benchmark"], scores["shots"], scores["metric"], strict=True)
        ]
    )
    identity = scores[list(IDENTITY_COLUMNS)].drop_duplicates("model_id").set_index("model_id")
    values = scores.pivot_table(index="model_id", columns="column", values="value", aggfunc="first")
    wide = identity.join(values).reset_index()
    return wide[list(IDENTITY_COLUMNS) + sorted(values.columns)]
