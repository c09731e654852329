"""``python -m pipeline demo``: the whole study in miniature, on this machine's CPU, offline.

Stages: prepare data -> train (tiny Llama and Qwen2 bases, full and LoRA) -> evaluate (base models
too; with --judge-url also MT-Bench and AlpacaEval 2 on tiny demo sets) -> perplexity of the training
data -> layer-wise weight change -> model map -> analysis report -> staging release on the local Hub ->
leaderboard Space. Re-running skips finished work."""

from __future__ import annotations

from dataclasses import dataclass

from common.config import setting
from common.layout import OutputRoot
from pipeline.serve import PipelineOptions, release_stage, run_then_serve
from pipeline.stages import Stage


@dataclass(frozen=True)
class Options(PipelineOptions):
    grid: str = setting("demo", "training grid (configs/grids/)")
    suite: str = setting("demo", "benchmark suite (configs/suites/)")
    only: str | None = setting(
        None, "train and evaluate only matching jobs, KEY=GLOB[,KEY=GLOB] (e.g. method=lora)"
    )
    limit: int | None = setting(None, "documents per benchmark task (quick checks)")
    workers: int = setting(1, "training jobs run in parallel")
    judge_url: str | None = setting(
        None, "an OpenAI-compatible judge: adds MT-Bench and AlpacaEval 2 (tiny demo sets) to the evaluation"
    )
    judge_model: str | None = setting(None, "the judge's model name (default: the study's)")
    judge_key_env: str | None = setting(None, "environment variable with the judge's API key")


def demo_stages(options: Options) -> list[Stage]:
    layout = OutputRoot(options.root)
    root = str(layout)
    grid = ["--grid", options.grid, "--root", root]
    only = ["--only", options.only] if options.only else []
    limit = ["--limit", str(options.limit)] if options.limit else []
    return [
        Stage("prepare data", ("training", "prepare", *grid, *only)),
        Stage("train", ("training", "run", *grid, *only, "--workers", str(options.workers))),
        Stage("evaluate", ("evaluation", "run", *grid, *only, "--suite", options.suite, *limit)),
        *judged_stages(options, grid + only),
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
                options.suite,
                "--root",
                root,
                "--min-datasets",
                "3",
            ),
        ),  # the demo grid has three datasets
        release_stage(options),
    ]


def judged_stages(options: Options, selection: list[str]) -> list[Stage]:
    """MT-Bench and AlpacaEval 2 on the shipped demo sets, only when a judge is given."""
    if not options.judge_url:
        return []
    judge = ["--judge-url", options.judge_url]
    judge += ["--judge-model", options.judge_model] if options.judge_model else []
    judge += ["--judge-key-env", options.judge_key_env] if options.judge_key_env else []
    fast = ["--demo-data", "--max-new-tokens", "32", "--judge-rpm", "600"]
    return [
        Stage(
            "judged benchmarks (MT-Bench, AlpacaEval 2)", ("evaluation", "judge", *selection, *judge, *fast)
        )
    ]


def main(options: Options) -> int:
    return run_then_serve(demo_stages(options), options)
