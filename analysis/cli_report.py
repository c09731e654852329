"""``python -m analysis report``: every finding, as tables, figures, report.md and report.html.

Damaged or empty inputs (a scores table without a column, a corrupt parquet, a bad CSV or quality.json,
no scores at all) are refused with one line and exit code 2. The report folder is written as a whole:
a failure leaves the previous report (or none), never half of one.

Example:
  python -m analysis report --scores outputs/demo/scores.parquet --out outputs/demo/report --min-datasets 3
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.common import MissingInputError
from analysis.config import AnalysisConfig
from analysis.predictors import load_training_texts
from analysis.report import Inputs, build_report
from common.config import setting
from common.errors import InputError
from common.io import atomic_directory, read_json
from common.schema import SchemaError, conform
from evaluation.importer import import_released
from evaluation.suites import benchmark_texts as texts_of


@dataclass(frozen=True)
class Options:
    scores: Path = setting(
        None, "long scores table (scores.parquet), or the released CSV (imported on the fly)", required=True
    )
    out: Path = setting(None, "report folder (e.g. outputs/demo/report)", required=True)
    perplexity: Path | None = setting(None, "perplexity.parquet of the evaluation stage")
    layers: Path | None = setting(None, "layers.parquet of `python -m analysis layers`")
    model_map: Path | None = setting(None, "model_map.parquet of `python -m analysis map`")
    quality: Path | None = setting(None, "quality.json of the importer")
    data_dir: Path | None = setting(None, "prepared training data folder (<root>/data)")
    suite: str | None = setting(None, "evaluation suite whose benchmark texts feed surface similarity")
    root: Path | None = setting(None, "output root for the suite's prepared tasks (default: --out)")
    title: str = setting("Massive SFT: analysis report", "title of the report")
    analysis: AnalysisConfig = setting(default_factory=AnalysisConfig, inline=True)


def read_parquet(path: Path, what: str) -> pd.DataFrame:
    """A parquet table, or an InputError naming the file when it cannot be read."""
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise InputError(
            f"{what} file {path} is not a readable parquet table ({error}); rebuild it"
        ) from None


def load_scores(path: Path) -> tuple[pd.DataFrame, dict | None]:
    """A parquet scores table, or the released CSV through the evaluation importer (with its findings).
    An empty table is an error: a report of nothing would look like a result."""
    if not path.is_file():
        raise InputError(f"scores file {path} does not exist (expected scores.parquet or the released CSV)")
    if path.suffix == ".csv":
        result = import_released(path)
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        scores, findings = result.scores, result.findings
    else:
        try:
            scores, findings = conform(read_parquet(path, "scores")), None
        except SchemaError as error:
            raise InputError(f"scores file {path}: {error}") from None
    if scores.empty:
        raise InputError(
            f"scores file {path} has no score rows; evaluate models first (python -m evaluation run) "
            "or pass the released CSV"
        )
    return scores, findings


def load_quality(path: Path | None, findings: dict | None, notes: list[str]) -> dict | None:
    if path is None:
        return findings
    if not path.exists():
        notes.append(f"quality file {path} does not exist")
        return None
    try:
        quality = read_json(path)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"quality file {path} is not valid JSON ({error}); rerun the importer") from None
    if not isinstance(quality, dict):
        raise InputError(f"quality file {path} is not a JSON object of findings; rerun the importer")
    return quality


def _optional_parquet(path: Path | None, what: str, notes: list[str]) -> pd.DataFrame | None:
    if path is None:
        return None
    if not path.exists():
        notes.append(f"{what} file {path} does not exist; that analysis is skipped.")
        return None
    return read_parquet(path, what)


def load_texts(options: Options, benchmarks: list[str], notes: list[str]):
    training = bench = None
    if options.data_dir:
        try:
            training = load_training_texts(options.data_dir)
        except MissingInputError as error:
            notes.append(str(error))
    if options.suite and training:
        bench = benchmark_texts(options.suite, benchmarks, options.root or options.out, notes)
    return training, bench


def benchmark_texts(suite: str, benchmarks: list[str], root: Path, notes: list[str]) -> dict[str, list[str]]:
    """Each benchmark's prompt texts from the evaluation stage; one that cannot load is noted and skipped."""
    out = {}
    for benchmark in benchmarks:
        try:
            out[benchmark] = texts_of(suite, benchmark, root)
        except Exception as error:  # noqa: BLE001 - a missing benchmark only loses its similarity
            notes.append(f"benchmark texts of {benchmark} not available in suite {suite}: {error}")
    return out


def main(options: Options) -> int:
    started = time.perf_counter()
    notes: list[str] = []
    scores, findings = load_scores(options.scores)
    quality = load_quality(options.quality, findings, notes)
    training, bench = load_texts(options, sorted(scores["benchmark"].dropna().unique()), notes)
    inputs = Inputs(
        scores=scores,
        perplexity=_optional_parquet(options.perplexity, "perplexity", notes),
        layers=_optional_parquet(options.layers, "layers", notes),
        model_map=_optional_parquet(options.model_map, "model map", notes),
        quality=quality,
        training_texts=training,
        benchmark_texts=bench,
        notes=notes,
    )
    for note in notes:
        print(f"[analysis] {note}", file=sys.stderr)
    with atomic_directory(options.out, keep=("cache",)) as folder:
        report = build_report(inputs, folder, options.analysis, options.title)
    print(
        f"wrote {len(report.tables)} tables, {sum(len(s.figures) for s in report.sections)} figures, "
        f"{options.out / 'report.md'} and {options.out / 'report.html'} in {time.perf_counter() - started:.1f}s"
    )
    return 0
