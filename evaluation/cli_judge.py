"""``python -m evaluation judge``: MT-Bench and AlpacaEval 2 for base models and kept checkpoints, scored
by an OpenAI-compatible judge. Answers and judgments are cached under ROOT/judged/; scores go to
ROOT/scores.parquet (MT-Bench 1-10, AlpacaEval win rates in percent), with the judge's identity.

Examples:
  export OPENAI_API_KEY=...   # read from the environment, never logged or stored
  python -m evaluation judge --grid demo --judge-url https://api.openai.com/v1
  transformers serve Qwen/Qwen2.5-7B-Instruct --port 8000 &
  python -m evaluation judge --root outputs/paper --judge-url http://127.0.0.1:8000/v1 \\
      --judge-model Qwen/Qwen2.5-7B-Instruct --benchmarks mtbench --limit 10
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common.config import setting
from common.errors import InputError, StepFailed, UsageError
from common.layout import default_root
from evaluation.judged.answers import GenerationSettings
from evaluation.judged.client import DEFAULT_JUDGE_MODEL, DEFAULT_KEY_ENV, JudgeSettings
from evaluation.judged.data import ALPACAEVAL_DATASET, DEMO_ALPACAEVAL, DEMO_MTBENCH, MTBENCH_DATASET
from evaluation.judged.run import BENCHMARK_ALIASES, JudgedOptions, benchmark_name, run_judged
from evaluation.runner import discover_models


@dataclass(frozen=True)
class JudgeFlags:
    """The judge and judged-benchmark settings, shared by ``judge`` and ``run``."""

    judge_url: str | None = setting(
        None,
        "base URL of an OpenAI-compatible API (e.g. https://api.openai.com/v1, http://127.0.0.1:8000/v1); "
        "`run` skips the suite's judged benchmarks without it",
    )
    judge_model: str = setting(
        DEFAULT_JUDGE_MODEL, "judge model name sent to the API (the study's by default)"
    )
    judge_key_env: str = setting(
        DEFAULT_KEY_ENV, "environment variable holding the API key (may be unset for local servers)"
    )
    judge_name: str | None = setting(
        None, "identity recorded with the scores (default: the judge model name)"
    )
    judge_rpm: float = setting(60.0, "judge requests per minute, at most")
    judge_concurrency: int = setting(8, "judge requests in flight, at most")
    judge_retries: int = setting(6, "retries of a request on 429/5xx/network errors")
    mtbench_data: str = setting(MTBENCH_DATASET, "MT-Bench questions: a Hub dataset id or a local path")
    alpacaeval_data: str = setting(
        ALPACAEVAL_DATASET, "AlpacaEval 2 references: a Hub dataset id or a local folder/file"
    )
    demo_data: bool = setting(False, "use the tiny offline demo sets of evaluation/judged/demo/ instead")
    max_new_tokens: int = setting(1024, "answer length limit of the models under test")
    generation_batch_size: int = setting(8, "answers generated per batch")

    def judged_options(
        self, benchmarks: Sequence[str], limit: int | None, device: str | None
    ) -> JudgedOptions:
        if self.judge_url is None:
            raise UsageError(
                "give --judge-url (an OpenAI-compatible base URL, e.g. https://api.openai.com/v1)"
            )
        if self.judge_rpm <= 0 or self.judge_concurrency < 1 or self.judge_retries < 0:
            raise UsageError("--judge-rpm and --judge-concurrency must be positive, --judge-retries >= 0")
        judge = JudgeSettings(
            url=self.judge_url,
            model=self.judge_model,
            key_env=self.judge_key_env,
            name=self.judge_name,
            requests_per_minute=self.judge_rpm,
            concurrency=self.judge_concurrency,
            max_retries=self.judge_retries,
        )
        generation = GenerationSettings(
            max_new_tokens=self.max_new_tokens, batch_size=self.generation_batch_size, device=device
        )
        return JudgedOptions(
            judge=judge,
            benchmarks=tuple(dict.fromkeys(benchmark_name(b) for b in benchmarks)),
            mtbench_data=str(DEMO_MTBENCH) if self.demo_data else self.mtbench_data,
            alpacaeval_data=str(DEMO_ALPACAEVAL) if self.demo_data else self.alpacaeval_data,
            limit=limit,
            generation=generation,
        )


@dataclass(frozen=True)
class Options:
    root: Path | None = setting(None, "output root holding runs/ (default: outputs/<grid>)")
    grid: str | None = setting(None, "grid whose base models are judged too")
    only: str | None = setting(None, "filter models by job fields, KEY=GLOB[,KEY=GLOB]")
    benchmarks: str = setting("mtbench,alpacaeval", "comma-separated: mtbench, alpacaeval")
    limit: int | None = setting(None, "questions/instructions per benchmark (quick checks)")
    device: str | None = setting(None, "torch device for generation (default: cuda if available)")
    judge: JudgeFlags = setting(default_factory=JudgeFlags, inline=True)


def run_judged_benchmarks(
    flags: JudgeFlags,
    benchmarks: Sequence[str],
    limit: int | None,
    root: Path,
    grid: str | None,
    only: str | None,
    device: str | None,
) -> int:
    """Shared by ``judge`` and ``run``: 0 when every (model, benchmark) was scored, else StepFailed."""
    unknown = [b for b in benchmarks if b not in BENCHMARK_ALIASES]
    if unknown:
        raise UsageError(f"--benchmarks: unknown {unknown}; choose from mtbench, alpacaeval")
    options = flags.judged_options(benchmarks, limit, device)
    models = discover_models(Path(root), grid=grid, only=only)
    if not models:
        raise InputError(
            f"no models under {root}: no runs/*/epoch-*/run.json and no --grid to take bases from"
        )
    summary = run_judged(Path(root), models, options)
    print(summary.render())
    if summary.failed:
        raise StepFailed(f"{len(summary.failed)} (model, benchmark) pairs failed; see FAILED above")
    return 0


def main(options: Options) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if options.root is None and options.grid is None:
        raise UsageError("give --root (or --grid, whose default root is outputs/<grid>)")
    root = options.root or default_root(options.grid)
    benchmarks = [b.strip() for b in options.benchmarks.split(",") if b.strip()]
    return run_judged_benchmarks(
        options.judge, benchmarks, options.limit, root, options.grid, options.only, options.device
    )
