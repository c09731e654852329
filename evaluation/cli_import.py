"""``python -m evaluation import-released``: the authors' table -> scores.parquet + quality.json.

Converts the study's released results table (evaluation_result.csv) into the long scores schema, runs
the data-quality checks, and writes scores.parquet and quality.json under --root. A table that is not
the released one (another checksum, fewer rows) is imported with a warning; one that is cut off (no
final line break, a short last row) is refused unless --allow-truncated.

Example:
  python -m evaluation import-released --csv ../shared/data/massive-sft/evaluation_result.csv
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from common.config import setting
from common.layout import OutputRoot, default_root
from common.paths import RELEASED_TABLE_URL
from common.schema import upsert_scores
from evaluation.importer import import_released
from evaluation.quality import format_summary, write_quality

DEFAULT_ROOT = default_root("study")


@dataclass(frozen=True)
class Options:
    csv: str = setting(RELEASED_TABLE_URL, "path or http(s) URL of the released table", metavar="PATH_OR_URL")
    root: Path = setting(DEFAULT_ROOT, "output root")
    out: Path | None = setting(
        None,
        "scores parquet (default: ROOT/scores.parquet); existing rows with the same "
        "(model_id, benchmark, shots, metric) are replaced",
    )
    quality: Path | None = setting(None, "quality report (default: ROOT/quality.json)")
    allow_truncated: bool = setting(
        False, "import a table that looks cut off (no final line break): its complete rows only"
    )


def main(options: Options) -> int:
    # Nothing is written before the whole table has been read and validated.
    result = import_released(options.csv, allow_truncated=options.allow_truncated)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    out = options.out or OutputRoot(options.root).scores
    quality = options.quality or OutputRoot(options.root).quality
    upsert_scores(out, result.scores)
    write_quality(quality, result.findings)
    print(format_summary(result.findings))
    print(
        f"wrote {len(result.scores)} scores of {result.scores['model_id'].nunique()} models to {out}; "
        f"findings to {quality}"
    )
    return 0
