"""``python -m pipeline demo``: the whole study in miniature, on this machine's CPU, offline.

Stages: prepare data -> train (tiny Llama and Qwen2 bases, full and LoRA) -> evaluate (base models
too; with --judge-url also MT-Bench and AlpacaEval 2 on tiny demo sets) -> perplexity of the training data -> layer-wise weight change -> model map -> analysis report -> staging
release on the local Hub -> leaderboard Space. Re-running skips finished work."""

from __future__ import annotations

import argparse
from pathlib import Path

from common.layout import OutputRoot, default_root
from pipeline.serve import add_serve_arguments, run_then_serve
from pipeline.stages import Stage


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=default_root(), help="output root of every stage")
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
    parser.add_argument(
        "--judge-url",
        default=None,
        help="an OpenAI-compatible judge: adds MT-Bench and AlpacaEval 2 (tiny demo sets) to the evaluation",
    )
    parser.add_argument("--judge-model", default=None, help="the judge's model name (default: the study's)")
    parser.add_argument("--judge-key-env", default=None, help="environment variable with the judge's API key")
    add_serve_arguments(parser)


def demo_stages(args: argparse.Namespace) -> list[Stage]:
    layout = OutputRoot(args.root)
    root = str(layout)
    grid = ["--grid", args.grid, "--root", root]
    only = ["--only", args.only] if args.only else []
    limit = ["--limit", str(args.limit)] if args.limit else []
    return [
        Stage("prepare data", ("training", "prepare", *grid, *only)),
        Stage("train", ("training", "run", *grid, *only, "--workers", str(args.workers))),
        Stage("evaluate", ("evaluation", "run", *grid, *only, "--suite", args.suite, *limit)),
        *judged_stages(args, grid + only),
        Stage("perplexity", ("evaluation", "perplexity", *grid, *only)),
        Stage("layer statistics", ("analysis", "layers", "--root", root)),
        Stage("model map", ("analysis", "map", "--root", root)),
        Stage(
            "analysis report",
            (
                "analysis",
                "report",
                "--scores",
                str(layout.scores),
                "--out",
                str(layout.report_dir),
                "--perplexity",
                str(layout.perplexity),
                "--layers",
                str(layout.layers),
                "--model-map",
                str(layout.model_map),
                "--data-dir",
                str(layout.data_dir),
                "--suite",
                args.suite,
                "--root",
                root,
                "--min-datasets",
                "3",
            ),
        ),  # the demo grid has three datasets
        Stage(
            "stage the release",
            ("release.publish", "--root", root, "--config", args.release_config, "--stage", "--no-progress"),
        ),
    ]


def judged_stages(args: argparse.Namespace, selection: list[str]) -> list[Stage]:
    """MT-Bench and AlpacaEval 2 on the shipped demo sets, only when a judge is given."""
    if not args.judge_url:
        return []
    judge = ["--judge-url", args.judge_url]
    judge += ["--judge-model", args.judge_model] if args.judge_model else []
    judge += ["--judge-key-env", args.judge_key_env] if args.judge_key_env else []
    command = (
        "evaluation",
        "judge",
        *selection,
        *judge,
        "--demo-data",
        "--max-new-tokens",
        "32",
        "--judge-rpm",
        "600",
    )
    return [Stage("judged benchmarks (MT-Bench, AlpacaEval 2)", command)]


def main(args: argparse.Namespace) -> int:
    return run_then_serve(demo_stages(args), args)
