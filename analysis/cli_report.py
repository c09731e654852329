"""``python -m analysis report``: every finding, as tables, figures, report.md and report.html."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import pandas as pd

from analysis.common import MissingInputError
from analysis.config import DEFAULT_CONFIG, AnalysisConfig
from analysis.predictors import load_training_texts
from analysis.report import Inputs, build_report
from common.io import read_json
from common.schema import conform
from evaluation.importer import import_released
from evaluation.suites import benchmark_texts as texts_of


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Every AnalysisConfig field as ``--field-name`` (defaults from the config)."""
    group = parser.add_argument_group("analysis settings")
    for item in dataclasses.fields(AnalysisConfig):
        default = getattr(DEFAULT_CONFIG, item.name)
        kind = {"int": int, "float": float, "str": str}.get(str(item.type).split(" ")[0], int)
        group.add_argument(
            f"--{item.name.replace('_', '-')}", type=kind, default=default, help=item.metadata.get("help")
        )


def config_from_args(args: argparse.Namespace) -> AnalysisConfig:
    return AnalysisConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(AnalysisConfig)})


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scores",
        required=True,
        type=Path,
        help="long scores table (scores.parquet), or the released CSV (imported on the fly)",
    )
    parser.add_argument("--out", required=True, type=Path, help="report folder (e.g. outputs/demo/report)")
    parser.add_argument("--perplexity", type=Path, help="perplexity.parquet of the evaluation stage")
    parser.add_argument("--layers", type=Path, help="layers.parquet of `python -m analysis layers`")
    parser.add_argument("--model-map", type=Path, help="model_map.parquet of `python -m analysis map`")
    parser.add_argument("--quality", type=Path, help="quality.json of the importer")
    parser.add_argument("--data-dir", type=Path, help="prepared training data folder (<root>/data)")
    parser.add_argument("--suite", help="evaluation suite whose benchmark texts feed surface similarity")
    parser.add_argument(
        "--root", type=Path, help="output root for the suite's prepared tasks (default: --out)"
    )
    parser.add_argument("--title", default="Massive SFT: analysis report")
    add_config_arguments(parser)


def load_scores(path: Path) -> tuple[pd.DataFrame, dict | None]:
    """A parquet scores table, or the released CSV through the evaluation importer (with its findings)."""
    if not path.exists():
        raise SystemExit(
            f"error: scores file {path} does not exist (expected scores.parquet or the released CSV)"
        )
    if path.suffix == ".csv":
        result = import_released(path)
        return result.scores, result.findings
    return conform(pd.read_parquet(path)), None


def _optional_parquet(path: Path | None, what: str, notes: list[str]) -> pd.DataFrame | None:
    if path is None:
        return None
    if not path.exists():
        notes.append(f"{what} file {path} does not exist; that analysis is skipped.")
        return None
    return pd.read_parquet(path)


def load_texts(args: argparse.Namespace, benchmarks: list[str], notes: list[str]):

    training = bench = None
    if args.data_dir:
        try:
            training = load_training_texts(args.data_dir)
        except MissingInputError as error:
            notes.append(str(error))
    if args.suite and training:
        bench = benchmark_texts(args.suite, benchmarks, args.root or args.out, notes)
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


def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    scores, findings = load_scores(args.scores)
    notes: list[str] = []
    quality = findings
    if args.quality:
        quality = read_json(args.quality) if args.quality.exists() else None
        if quality is None:
            notes.append(f"quality file {args.quality} does not exist")
    training, bench = load_texts(args, sorted(scores["benchmark"].dropna().unique()), notes)
    inputs = Inputs(
        scores=scores,
        perplexity=_optional_parquet(args.perplexity, "perplexity", notes),
        layers=_optional_parquet(args.layers, "layers", notes),
        model_map=_optional_parquet(args.model_map, "model map", notes),
        quality=quality,
        training_texts=training,
        benchmark_texts=bench,
        notes=notes,
    )
    for note in notes:
        print(f"[analysis] {note}", file=sys.stderr)
    report = build_report(inputs, args.out, config_from_args(args), args.title)
    print(
        f"wrote {len(report.tables)} tables, {sum(len(s.figures) for s in report.sections)} figures, "
        f"{args.out / 'report.md'} and {args.out / 'report.html'} in {time.perf_counter() - started:.1f}s"
    )
    return 0
