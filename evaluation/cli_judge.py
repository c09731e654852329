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

import argparse
import logging
import sys
from pathlib import Path

from common.layout import default_root
from evaluation.judged.answers import GenerationSettings
from evaluation.judged.client import DEFAULT_JUDGE_MODEL, DEFAULT_KEY_ENV, JudgeError, JudgeSettings
from evaluation.judged.data import (
    ALPACAEVAL_DATASET,
    DEMO_ALPACAEVAL,
    DEMO_MTBENCH,
    MTBENCH_DATASET,
    JudgedDataError,
)
from evaluation.judged.run import JudgedOptions, benchmark_name, run_judged
from evaluation.runner import discover_models

JUDGED_ALIASES = ("mtbench", "alpacaeval")


def add_judge_arguments(parser: argparse.ArgumentParser, url_required: bool) -> None:
    """The judge and judged-benchmark options, shared by ``judge`` and ``run``."""
    group = parser.add_argument_group("judge (MT-Bench, AlpacaEval 2)")
    group.add_argument(
        "--judge-url",
        required=url_required,
        default=None,
        help="base URL of an OpenAI-compatible API (e.g. https://api.openai.com/v1, http://127.0.0.1:8000/v1)"
        + ("" if url_required else "; without it the suite's judged benchmarks are skipped"),
    )
    group.add_argument(
        "--judge-model",
        default=DEFAULT_JUDGE_MODEL,
        help="judge model name sent to the API (default: the study's)",
    )
    group.add_argument(
        "--judge-key-env",
        default=DEFAULT_KEY_ENV,
        help="environment variable holding the API key (default: OPENAI_API_KEY; may be unset for local servers)",
    )
    group.add_argument(
        "--judge-name", default=None, help="identity recorded with the scores (default: the judge model name)"
    )
    group.add_argument("--judge-rpm", type=float, default=60.0, help="judge requests per minute, at most")
    group.add_argument("--judge-concurrency", type=int, default=8, help="judge requests in flight, at most")
    group.add_argument(
        "--judge-retries", type=int, default=6, help="retries of a request on 429/5xx/network errors"
    )
    group.add_argument(
        "--mtbench-data",
        default=MTBENCH_DATASET,
        help="MT-Bench questions: a Hub dataset id or a local path (default: HuggingFaceH4/mt_bench_prompts)",
    )
    group.add_argument(
        "--alpacaeval-data",
        default=ALPACAEVAL_DATASET,
        help="AlpacaEval 2 references: a Hub dataset id or a local folder/file (default: tatsu-lab/alpaca_eval)",
    )
    group.add_argument(
        "--max-new-tokens", type=int, default=1024, help="answer length limit of the models under test"
    )
    group.add_argument("--generation-batch-size", type=int, default=8, help="answers generated per batch")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--root", type=Path, default=None, help="output root holding runs/ (default: outputs/<grid>)"
    )
    parser.add_argument("--grid", default=None, help="grid whose base models are judged too")
    parser.add_argument("--only", default=None, help="filter models by job fields, KEY=GLOB[,KEY=GLOB]")
    parser.add_argument(
        "--benchmarks",
        default=",".join(JUDGED_ALIASES),
        help="comma-separated: mtbench, alpacaeval (default: both)",
    )
    parser.add_argument("--limit", type=int, default=None, help="questions/instructions per benchmark")
    parser.add_argument(
        "--demo-data",
        action="store_true",
        help="use the tiny offline demo sets shipped in evaluation/judged/demo/ instead of the Hub datasets",
    )
    parser.add_argument(
        "--device", default=None, help="torch device for generation (default: cuda if available)"
    )
    add_judge_arguments(parser, url_required=True)


def judged_options(args: argparse.Namespace, benchmarks: list[str], limit: int | None = None):

    judge = JudgeSettings(
        url=args.judge_url,
        model=args.judge_model,
        key_env=args.judge_key_env,
        name=args.judge_name,
        requests_per_minute=args.judge_rpm,
        concurrency=args.judge_concurrency,
        max_retries=args.judge_retries,
    )
    generation = GenerationSettings(
        max_new_tokens=args.max_new_tokens,
        batch_size=args.generation_batch_size,
        device=getattr(args, "device", None),
    )
    demo = getattr(args, "demo_data", False)
    return JudgedOptions(
        judge=judge,
        benchmarks=tuple(dict.fromkeys(benchmark_name(b) for b in benchmarks)),
        mtbench_data=str(DEMO_MTBENCH) if demo else args.mtbench_data,
        alpacaeval_data=str(DEMO_ALPACAEVAL) if demo else args.alpacaeval_data,
        limit=limit,
        generation=generation,
    )


def run_judged_cli(args: argparse.Namespace, root: Path, benchmarks: list[str], limit: int | None) -> int:
    """Shared by ``judge`` and ``run``: 0 ok, 1 some model/benchmark failed, 2 bad input."""

    try:
        options = judged_options(args, benchmarks, limit)
        models = discover_models(Path(root), grid=args.grid, only=args.only)
        if not models:
            raise JudgedDataError(f"no models under {root}: no runs/*/epoch-*/run.json and no --grid")
        summary = run_judged(Path(root), models, options)
    except (JudgeError, JudgedDataError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summary.render())
    return 1 if summary.failed else 0


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.root is None and args.grid is None:
        print("error: give --root (or --grid, whose default root is outputs/<grid>)", file=sys.stderr)
        return 2
    root = args.root or default_root(args.grid)
    benchmarks = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
    return run_judged_cli(args, root, benchmarks, args.limit)
