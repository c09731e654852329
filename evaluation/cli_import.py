"""``python -m evaluation import-released``: the authors' table -> scores.parquet + quality.json."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.layout import OutputRoot, default_root
from common.paths import RELEASED_TABLE_URL
from common.schema import upsert_scores
from evaluation.importer import ReleasedTableError, import_released
from evaluation.quality import format_summary, write_quality

DEFAULT_ROOT = default_root("study")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Convert the study's released results table (evaluation_result.csv) into the long scores "
        "schema, run the data-quality checks, and write scores.parquet and quality.json under --root. "
        "Example: python -m evaluation import-released --csv ../shared/data/massive-sft/evaluation_result.csv"
    )
    parser.add_argument("--csv", default=RELEASED_TABLE_URL, help="path or http(s) URL of the released table")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="output root")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="scores parquet (default: ROOT/scores.parquet); existing rows with the same "
        "(model_id, benchmark, shots, metric) are replaced",
    )
    parser.add_argument(
        "--quality", type=Path, default=None, help="quality report (default: ROOT/quality.json)"
    )


def main(args: argparse.Namespace) -> int:

    try:
        result = import_released(args.csv)
    except ReleasedTableError as error:
        # Nothing has been written yet: the import validates everything before any output.
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = args.out or OutputRoot(args.root).scores
    quality = args.quality or OutputRoot(args.root).quality
    upsert_scores(out, result.scores)
    write_quality(quality, result.findings)
    print(format_summary(result.findings))
    print(
        f"wrote {len(result.scores)} scores of {result.scores['model_id'].nunique()} models to {out}; "
        f"findings to {quality}"
    )
    return 0
