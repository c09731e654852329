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

import argparse
import fnmatch
import sys
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from analysis.layers import KERNELS, CheckpointError, LayerShapeError, layer_changes, resolve_kernel
from common.io import replace_rows
from common.layout import OutputRoot, default_root, iter_checkpoints

IDENTITY = ("model_id", "run_id", "base_model")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--root", type=Path, default=default_root(), help="output root of a grid")
    parser.add_argument(
        "--out", type=Path, default=None, help="output parquet (default: ROOT/layers.parquet)"
    )
    parser.add_argument("--only", default=None, metavar="GLOB", help="only model ids matching this glob")
    parser.add_argument("--redo", action="store_true", help="recompute checkpoints already in the output")

    parser.add_argument(
        "--kernel",
        choices=KERNELS,
        default="auto",
        help="how the norms are computed: 'compiled' fuses each tensor pass with torch.compile on "
        "one thread (needs a C++ compiler; the fastest), 'eager' uses plain torch ops on a thread "
        "per core; 'auto' (default) compiles when it can, else warns and runs eagerly",
    )


def _done(out: Path) -> set[str]:
    return set(pd.read_parquet(out, columns=["model_id"])["model_id"]) if out.exists() else set()


def main(args: argparse.Namespace) -> int:

    out = args.out or OutputRoot(args.root).layers
    checkpoints = [
        c for c in iter_checkpoints(args.root) if not args.only or fnmatch.fnmatchcase(c.model_id, args.only)
    ]
    if not checkpoints:
        print(
            f"error: no kept checkpoints (runs/*/epoch-*/run.json) under {args.root}; train a grid first "
            "(python -m training run)",
            file=sys.stderr,
        )
        return 2
    try:
        kernel = resolve_kernel(args.kernel)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    done = set() if args.redo else _done(out)
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
