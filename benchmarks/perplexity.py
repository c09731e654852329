"""Tokens per second of the batched perplexity implementation against the per-sample reference, in the
same run, on the same model and samples (CPU unless --device says otherwise).

    python benchmarks/perplexity.py                    # small: CI-sized
    python benchmarks/perplexity.py --samples 2000 --hidden-size 256 --layers 4 --batch-size 32
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model_path = build_tiny_model(
            folder / "model", architecture="llama", hidden_size=args.hidden_size, num_layers=args.layers
        )
        data = prepared_file(folder, args.samples)
        model, tokenizer, device = load_model(model_path, args.device)
        frame = pd.read_parquet(data)
        compute_perplexity(
            model_path,
            [data],
            batch_size=args.batch_size,
            device=device,
            model_and_tokenizer=(model, tokenizer),
            progress=False,
        )  # warm-up
        start = time.perf_counter()
        samples, _ = compute_perplexity(
            model_path,
            [data],
            batch_size=args.batch_size,
            device=device,
            model_and_tokenizer=(model, tokenizer),
            progress=False,
        )
        batched_s = time.perf_counter() - start
        start = time.perf_counter()
        reference = [reference_perplexity(model, tokenizer, r.prompt, r.text) for r in frame.itertuples()]
        reference_s = time.perf_counter() - start
    # Tokens processed = every input token (predicted tokens + the first one of each sample).
    tokens = int(samples.loc[samples["scope"] == "full", "n_tokens"].sum()) + len(frame)
    assert tokens == sum(r["full"][1] for r in reference) + len(frame)
    batched, plain = tokens / batched_s, tokens / reference_s
    print(
        f"{len(frame)} samples, {tokens} tokens, tiny Llama hidden {args.hidden_size} x {args.layers} layers, "
        f"device {args.device}, batch size {args.batch_size}"
    )
    print(f"batched (length-sorted, padded): {batched:12.0f} tokens/s ({batched_s:.2f} s)")
    print(f"per-sample reference:            {plain:12.0f} tokens/s ({reference_s:.2f} s)")
    print(f"speed-up: {batched / plain:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
