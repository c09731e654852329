"""``python -m evaluation run``: evaluate base models and kept checkpoints on a benchmark suite.

Examples:
  python -m evaluation run --root outputs/demo --suite demo --grid demo
  python -m evaluation run --root outputs/paper --suite paper --only base_model_name=OLMo-7B-hf --backend vllm
  python -m evaluation run --root outputs/demo --suite demo --executor local --workers 2
  python -m evaluation run --root outputs/paper --suite paper --executor slurm --slurm-partition gpu
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from common.paths import DEFAULT_OUTPUT_ROOT
from jobs.cli import add_slurm_arguments, slurm_options


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="output root holding runs/ (default: outputs/<grid>); scores go to ROOT/scores.parquet",
    )
    parser.add_argument(
        "--suite",
        default="demo",
        help="suite name in configs/suites/ (demo, paper) or a path to a suite YAML (default: demo)",
    )
    parser.add_argument(
        "--grid",
        default=None,
        help="grid whose base models are evaluated too (default: the base models of the runs found)",
    )
    parser.add_argument(
        "--only",
        default=None,
        help="filter models by job fields, KEY=GLOB[,KEY=GLOB] (e.g. dataset=demo_facts,method=lora)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="documents per task, overriding the suite's limits (for quick checks)",
    )
    parser.add_argument(
        "--batch-size", default="8", help="lm-eval batch size, an integer or 'auto' (default: 8)"
    )
    parser.add_argument(
        "--backend",
        choices=("hf", "vllm"),
        default="hf",
        help="lm-eval model backend: hf (transformers) or vllm (needs the vllm package)",
    )
    parser.add_argument(
        "--device", default=None, help="torch device for the hf backend (default: cuda if available)"
    )
    parser.add_argument(
        "--executor",
        choices=("local", "slurm"),
        default="local",
        help="local: on this machine; slurm: one job per model, with the resources its recipe gave "
        "training (one GPU at most)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="local worker processes, one model each (1: everything in this process)",
    )
    add_slurm_arguments(parser)


def _batch_size(value: str) -> int | str:
    return value if value == "auto" else int(value)


def main(args: argparse.Namespace) -> int:
    from evaluation.runner import RunOptions, run_suite, run_suite_distributed

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.root is None and args.grid is None:
        raise SystemExit("give --root (or --grid, whose default root is outputs/<grid>)")
    root = args.root or DEFAULT_OUTPUT_ROOT / args.grid
    options = RunOptions(
        limit=args.limit, batch_size=_batch_size(args.batch_size), backend=args.backend, device=args.device
    )
    if args.executor == "local" and args.workers == 1:
        summary = run_suite(root, args.suite, grid=args.grid, only=args.only, options=options)
        print(summary.render())
        return 1 if summary.failed else 0
    summary = run_suite_distributed(
        root,
        args.suite,
        grid=args.grid,
        only=args.only,
        options=options,
        executor=args.executor,
        workers=args.workers,
        slurm_options=slurm_options(args),
    )
    print(summary)
    print(f"scores: {root / 'scores.parquet'}")
    return 0 if summary.ok else 1
