"""Tokens per second of the batched perplexity implementation against the per-sample reference, in the
same process, on the same model and samples (CPU unless --device says otherwise).

Fair by construction: both sides run with the same torch thread count (--threads, set once for the
process), after one warm-up each, interleaved (batched, reference, then reference, batched, ...: a
machine that slows down or speeds up mid-run affects both alike), --runs times; reported are every run,
the median tokens/s of each side and the median of the per-run speed-ups.

    python benchmarks/perplexity.py                    # small: CI-sized
    python benchmarks/perplexity.py --samples 2000 --hidden-size 256 --layers 4 --batch-size 32 --runs 7
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.template import render_prompt, render_sample  # noqa: E402
from evaluation.perplexity import compute_perplexity, load_model, reference_perplexity  # noqa: E402
from training.demo_data import DEMO_DATASETS, demo_examples  # noqa: E402
from training.tiny import build_tiny_model  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--samples", type=int, default=48, help="samples scored (spread over the demo datasets)"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--hidden-size", type=int, default=128, help="tiny Llama width")
    parser.add_argument("--layers", type=int, default=2, help="tiny Llama depth")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=int, default=5, help="interleaved timed runs of each side (median)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads for both sides (default: torch's own)"
    )
    return parser.parse_args(argv)


def prepared_file(folder: Path, samples: int) -> Path:
    """Demo samples of varied lengths (some responses repeated) in the prepared-set layout."""
    rows = []
    per_set = -(-samples // len(DEMO_DATASETS))
    for name in DEMO_DATASETS:
        for i, ex in enumerate(demo_examples(name, "train", per_set)):
            response = " ".join([ex["response"]] * (1 + i % 6))
            rows.append(
                {
                    "id": f"{name}-{i}",
                    "dataset": "bench",
                    "source": name,
                    "instruction": ex["instruction"],
                    "response": response,
                    "prompt": render_prompt(ex["instruction"]),
                    "text": render_sample(ex["instruction"], response),
                }
            )
    path = folder / f"bench__{samples}__benchmark.parquet"
    pd.DataFrame(rows[:samples]).to_parquet(path)
    return path


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = action()
    return time.perf_counter() - start, value


def interleaved(
    sides: dict[str, Callable[[], Any]], runs: int
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Seconds of each side per run, alternating which side goes first; the last value of each."""
    seconds: dict[str, list[float]] = {name: [] for name in sides}
    values: dict[str, Any] = {name: action() for name, action in sides.items()}  # warm-up
    names = list(sides)
    for run in range(runs):
        for name in names if run % 2 == 0 else names[::-1]:
            elapsed, values[name] = timed(sides[name])
            seconds[name].append(elapsed)
    return seconds, values


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model_path = build_tiny_model(
            folder / "model", architecture="llama", hidden_size=args.hidden_size, num_layers=args.layers
        )
        data = prepared_file(folder, args.samples)
        model, tokenizer, device = load_model(model_path, args.device)
        frame = pd.read_parquet(data)

        def batched() -> Any:
            return compute_perplexity(
                model_path,
                [data],
                batch_size=args.batch_size,
                device=device,
                model_and_tokenizer=(model, tokenizer),
                progress=False,
            )[0]

        def reference() -> Any:
            return [reference_perplexity(model, tokenizer, r.prompt, r.text) for r in frame.itertuples()]

        seconds, values = interleaved({"batched": batched, "reference": reference}, max(1, args.runs))
    samples = values["batched"]
    # Tokens processed = every input token (predicted tokens + the first one of each sample).
    tokens = int(samples.loc[samples["scope"] == "full", "n_tokens"].sum()) + len(frame)
    assert tokens == sum(r["full"][1] for r in values["reference"]) + len(frame)
    speedups = [r / b for b, r in zip(seconds["batched"], seconds["reference"], strict=True)]
    print(
        f"{len(frame)} samples, {tokens} tokens, tiny Llama hidden {args.hidden_size} x {args.layers} layers, "
        f"device {args.device}, batch size {args.batch_size}, {threads} torch threads for both sides, "
        f"{len(speedups)} interleaved runs after a warm-up of each"
    )
    for label, name in (
        ("batched (length-sorted, padded)", "batched"),
        ("per-sample reference", "reference"),
    ):
        median = statistics.median(seconds[name])
        runs = " ".join(f"{s:.2f}" for s in seconds[name])
        print(f"{label + ':':33}{tokens / median:12.0f} tokens/s median ({median:.2f} s; runs: {runs} s)")
    print(
        f"speed-up: {statistics.median(speedups):.2f}x median of the per-run ratios "
        f"(min {min(speedups):.2f}x, max {max(speedups):.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
