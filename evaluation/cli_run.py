"""``python -m evaluation run``: evaluate base models and kept checkpoints on a benchmark suite.

Examples:
  python -m evaluation run --root outputs/demo --suite demo --grid demo
  python -m evaluation run --root outputs/paper --suite paper --only base_model_name=OLMo-7B-hf --backend vllm
  python -m evaluation run --root outputs/demo --suite demo --executor local --workers 2
  python -m evaluation run --root outputs/paper --suite paper --executor slurm --slurm-partition gpu
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from common.config import setting
from common.errors import UsageError
from common.layout import OutputRoot, default_root
from evaluation.cli_judge import JudgeFlags, run_judged_benchmarks
from evaluation.runner import RunOptions, run_suite, run_suite_distributed
from evaluation.suites import load_suite
from jobs.cli import SlurmSettings


@dataclass(frozen=True)
class RunFlags:
    """How each model is run (``evaluation run`` and ``evaluation queue``)."""

    limit: int | None = setting(None, "documents per task, overriding the suite's limits (for quick checks)")
    batch_size: str = setting("8", "lm-eval batch size, an integer or 'auto'")
    backend: Literal["hf", "vllm"] = setting(
        "hf", "lm-eval model backend: hf (transformers) or vllm (needs the vllm package)"
    )
    device: str | None = setting(None, "torch device for the hf backend (default: cuda if available)")
    allow_unsandboxed_code: bool = setting(
        False,
        "run HumanEval/MBPP completions even where bubblewrap cannot isolate them "
        "(they then run as plain processes: only for trusted models)",
    )

    def run_options(self) -> RunOptions:
        if self.batch_size != "auto" and not self.batch_size.isdigit():
            raise UsageError(f"--batch-size {self.batch_size!r}: expected a positive integer or 'auto'")
        batch = self.batch_size if self.batch_size == "auto" else int(self.batch_size)
        return RunOptions(
            limit=self.limit,
            batch_size=batch,
            backend=self.backend,
            device=self.device,
            allow_unsandboxed_code=self.allow_unsandboxed_code,
        )


@dataclass(frozen=True)
class Options:
    root: Path | None = setting(
        None, "output root holding runs/ (default: outputs/<grid>); scores go to ROOT/scores.parquet"
    )
    suite: str = setting("demo", "suite name in configs/suites/ (demo, paper) or a path to a suite YAML")
    grid: str | None = setting(
        None, "grid whose base models are evaluated too (default: the base models of the runs found)"
    )
    only: str | None = setting(
        None, "filter models by job fields, KEY=GLOB[,KEY=GLOB] (e.g. dataset=demo_facts,method=lora)"
    )
    executor: Literal["local", "slurm"] = setting(
        "local",
        "local: on this machine; slurm: one job per model, with the resources its recipe gave training "
        "(one GPU at most)",
    )
    workers: int = setting(1, "local worker processes, one model each (1: everything in this process)")
    run: RunFlags = setting(default_factory=RunFlags, inline=True)
    judge: JudgeFlags = setting(default_factory=JudgeFlags, inline=True)
    slurm: SlurmSettings = setting(default_factory=SlurmSettings, inline=True)


def main(options: Options) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if options.root is None and options.grid is None:
        raise UsageError("give --root (or --grid, whose default root is outputs/<grid>)")
    root = options.root or default_root(options.grid)
    run = options.run.run_options()
    if options.executor == "local" and options.workers == 1:
        summary = run_suite(root, options.suite, grid=options.grid, only=options.only, options=run)
        print(summary.render())
        return max(1 if summary.failed else 0, _judged(options, root))
    summary = run_suite_distributed(
        root,
        options.suite,
        grid=options.grid,
        only=options.only,
        options=run,
        executor=options.executor,
        workers=options.workers,
        slurm_options=options.slurm.slurm_options(),
    )
    print(summary)
    print(f"scores: {OutputRoot(root).scores}")
    return max(0 if summary.ok else 1, _judged(options, root))


def _judged(options: Options, root: Path) -> int:
    """The suite's MT-Bench / AlpacaEval entries: scored when a judge is given, else named as skipped."""
    names = [e.benchmark for e in load_suite(options.suite).judged_entries]
    if not names:
        return 0
    if options.judge.judge_url is None:
        print(
            f"skipped {', '.join(names)}: they need a judge model, pass --judge-url (docs/evaluation-run.md)"
        )
        return 0
    selection = {"root": root, "grid": options.grid, "only": options.only, "device": options.run.device}
    return run_judged_benchmarks(options.judge, names, options.run.limit, **selection)
