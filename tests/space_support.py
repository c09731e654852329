"""Test data for the Space: the authors' real released table, imported by the evaluation stage and
laid out as the published results dataset by the release stage."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pandas as pd

from common.io import write_json, write_parquet


def released_import(csv_path: Path) -> tuple[pd.DataFrame, dict]:
    """(long scores, quality findings) of the real released table."""
    from evaluation.importer import import_released

    result = import_released(csv_path)
    return result.scores, result.findings


def write_results_folder(
    scores: pd.DataFrame, findings: dict, folder: Path, tables: dict[str, pd.DataFrame] | None = None
) -> Path:
    """The published results dataset (docs/ARCHITECTURE.md) built by the release stage from an output
    root holding ``scores``, ``findings`` and, when given, analysis ``tables`` (name -> frame)."""
    from release.results_dataset import build_results_dataset

    root = folder / "root"
    shutil.rmtree(root, ignore_errors=True)
    write_parquet(root / "scores.parquet", scores)
    write_json(root / "quality.json", findings)
    for name, frame in (tables or {}).items():
        write_parquet(root / "report" / "tables" / f"{name}.parquet", frame)
    return build_results_dataset(root, folder / "results")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
