"""``python -m pipeline demo``: the whole study in miniature, on this machine's CPU, offline.

Stages: prepare data -> train (tiny Llama and Qwen2 bases, full and LoRA) -> evaluate (base models
too) -> perplexity of the training data -> layer-wise weight change -> model map -> analysis report -> staging
release on the local Hub -> leaderboard Space. Re-running skips finished work."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.serve import add_serve_arguments, run_then_serve
from pipeline.stages import Stage, staging_stage


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=Path("outputs/demo"), help="output root of every stage")
    parser.add_argument("--grid", default="demo", help="training grid (configs/grids/)")
    parser.add_argument("--suite", default="demo", help="benchmark suite (configs/suites/)")
    parser.add_argument("--release-config", default="demo", help="release config (configs/release/)")
    parser.add_argument(
        "--only",
        default=None,
        help="train and evaluate only matching jobs, KEY=GLOB[,KEY=GLOB] (e.g. method=lora)",
    )
    parser.add_argument("--limit", type=int, default=None, help="documents per benchmark task (quick checks)")
    parser.add_argument("--workers", type=int, default=1, help="training jobs run in parallel")
    add_serve_arguments(parser)


def demo_stages(args: argparse.Namespace) -> list[Stage]:
    root = str(args.root)
    grid = ["--grid", args.grid, "--root", root]
    only = ["--only", args.only] if args.only else []
    limit = ["--limit", str(args.limit)] if args.limit else []
    return [
        Stage("prepare data", ("training", "prepare", *grid, *only)),
        Stage("train", ("training", "run", *grid, *only, "--workers", str(args.workers))),
        Stage("evaluate", ("evaluation", "run", *grid, *only, "--suite", args.suite, *limit)),
        Stage("perplexity", ("evaluation", "perplexity", *grid, *only)),
        Stage("layer statistics", ("analysis", "layers", "--root", root)),
        Stage("model map", ("analysis", "map", "--root", root)),
        Stage(
            "analysis report",
            (
                "analysis",
                "report",
                "--scores",
                f"{root}/scores.parquet",
                "--out",
                f"{root}/report",
                "--perplexity",
                f"{root}/perplexity.parquet",
                "--layers",
                f"{root}/layers.parquet",
                "--model-map",
                f"{root}/model_map.parquet",
                "--data-dir",
                f"{root}/data",
                "--suite",
                args.suite,
                "--root",
                root,
                "--min-datasets",
                "3",
            ),
        ),  # the demo grid has three datasets
        staging_stage(root, args.release_config, serve=not args.no_serve),
    ]


def main(args: argparse.Namespace) -> int:
    return run_then_serve(demo_stages(args), args)
