"""Test data for the Space: the authors' real released table, imported by the evaluation stage and
laid out as the published results dataset by the release stage."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from common.catalog import language_of
from common.io import write_json, write_parquet
from common.schema import to_wide


def released_import(csv_path: Path) -> tuple[pd.DataFrame, dict]:
    """(long scores, quality findings) of the real released table."""
    try:
        from evaluation.importer import import_released

        result = import_released(csv_path)
        return result.scores, result.findings
    except Exception:  # TEMPORARY: the importer's quality checks are still being written
        from evaluation.importer import parse_table, to_long

        return to_long(parse_table(Path(csv_path).read_text(encoding="utf-8"))), {}


def write_results_folder(scores: pd.DataFrame, findings: dict, folder: Path) -> Path:
    """The published results dataset layout (docs/ARCHITECTURE.md) for ``scores``."""
    try:
        from release.results_dataset import build_results_dataset
    except ModuleNotFoundError:
        wide = to_wide(scores)
        wide["language"] = [language_of(n) for n in wide["base_model_name"]]
        wide["repo_id"] = None
        wide["revision"] = None
        write_parquet(folder / "data" / "leaderboard.parquet", wide)
        write_parquet(folder / "data" / "scores.parquet", scores)
        write_json(folder / "quality.json", findings)
        return folder
    return build_results_dataset(scores=scores, out=folder, quality=findings)  # pragma: no cover
