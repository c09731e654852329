"""``python -m analysis layers``: per-layer weight change of every kept checkpoint under ROOT/runs against
its base model (``base_model_path`` in the checkpoint's run.json), written to ROOT/layers.parquet.

Resumable: checkpoints already in layers.parquet are skipped, and each finished checkpoint is written at
once (atomically). A checkpoint that does not match its base (shapes, missing tensors) is skipped with a
warning; the others go on.

Examples:
  python -m analysis layers --root outputs/demo
  python -m analysis layers --root outputs/paper --only "*__lora__*"
"""

from __future__ import annotations

import fnmatch
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
from tqdm import tqdm

from analysis.common import MissingInputError
from analysis.layers import KERNELS, CheckpointError, LayerShapeError, layer_changes, resolve_kernel
from common.config import setting
from common.errors import UsageError
from common.io import replace_rows
from common.layout import OutputRoot, default_root, iter_checkpoints

IDENTITY = ("model_id", "run_id", "base_model")


@dataclass(frozen=True)
class Options:
    root: Path = setting(default_root(), "output root of a grid")
    out: Path | None = setting(None, "output parquet (default: ROOT/layers.parquet)")
    only: str | None = setting(None, "only model ids matching this glob", metavar="GLOB")
    redo: bool = setting(False, "recompute checkpoints already in the output")
    kernel: Literal[KERNELS] = setting(
        "auto",
        "how the norms are computed: 'compiled' fuses each tensor pass with torch.compile on one thread "
        "(needs a C++ compiler; the fastest), 'eager' uses plain torch ops on a thread per core; 'auto' "
        "compiles when it can, else warns and runs eagerly",
    )


def _done(out: Path) -> set[str]:
    return set(pd.read_parquet(out, columns=["model_id"])["model_id"]) if out.exists() else set()


def main(options: Options) -> int:
    out = options.out or OutputRoot(options.root).layers
    checkpoints = [
        c
        for c in iter_checkpoints(options.root)
        if not options.only or fnmatch.fnmatchcase(c.model_id, options.only)
    ]
    if not checkpoints:
        raise MissingInputError(
            f"no kept checkpoints (runs/*/epoch-*/run.json) under {options.root}; train a grid first "
            "(python -m training run)"
        )
    try:
        kernel = resolve_kernel(options.kernel)
    except RuntimeError as error:
        raise UsageError(str(error)) from None
    done = set() if options.redo else _done(out)
    pending = [c for c in checkpoints if c.model_id not in done]
    skipped = []
    for checkpoint in tqdm(pending, desc="layer analysis", unit="checkpoint"):
        record = checkpoint.record
        try:
            rows = layer_changes(checkpoint.folder, record.base_model_path, kernel=kernel)
        except (LayerShapeError, CheckpointError, FileNotFoundError) as error:
            print(f"warning: skipping {record.model_id}: {error}", file=sys.stderr)
            skipped.append(record.model_id)
            continue
        rows.insert(0, "base_model", record.job.get("base_model", record.base_model_path))
        rows.insert(0, "run_id", record.run_id)
        rows.insert(0, "model_id", record.model_id)
        replace_rows(out, rows, key="model_id")
    print(
        f"{len(pending) - len(skipped)} checkpoint(s) analysed, {len(checkpoints) - len(pending)} already "
        f"done, {len(skipped)} skipped; results in {out}"
    )
    return 0
