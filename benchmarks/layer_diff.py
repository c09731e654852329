"""Layer analysis benchmark: a synthetic pair of Llama checkpoints in safetensors (bf16, sharded), then in
the same run: the analysis's throughput vs a plain read of the same files, its peak memory vs the two
largest tensors + 300 MB, and the time of a naive implementation that loads both full models with
transformers. Prints PASS/FAIL per target.

Peak memory is the peak of the process's anonymous resident memory (RssAnon in /proc/self/status, sampled
every 2 ms) above its value before the analysis: safetensors memory-maps the files, and those file-backed
page-cache pages are reclaimable, so they are excluded.

    python benchmarks/layer_diff.py                 # 2 GB per checkpoint, a 4 GB pair
    python benchmarks/layer_diff.py --size-gb 0.05  # a quick check (CI)
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from analysis.layers import KERNELS, layer_changes, resolve_kernel, tensor_files  # noqa: E402

HIDDEN, INTERMEDIATE, VOCAB = 1024, 2816, 32000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-gb", type=float, default=2.0, help="size of each checkpoint (bf16)")
    parser.add_argument("--shard-gb", type=float, default=0.5, help="safetensors shard size")
    parser.add_argument(
        "--repeats", type=int, default=5, help="interleaved timing runs (medians are reported)"
    )
    parser.add_argument(
        "--kernel",
        choices=KERNELS,
        default="auto",
        help="the analysis's kernel (see --help of python -m analysis layers)",
    )
    parser.add_argument(
        "--skip-naive", action="store_true", help="do not time the transformers implementation"
    )
    return parser.parse_args(argv)


def llama_config(size_gb: float) -> dict:
    per_layer = 4 * HIDDEN * HIDDEN + 3 * HIDDEN * INTERMEDIATE + 2 * HIDDEN
    fixed = 2 * VOCAB * HIDDEN + HIDDEN
    layers = max(2, round((size_gb * 1e9 / 2 - fixed) / per_layer))
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": layers,
        "num_attention_heads": 16,
        "num_key_value_heads": 16,
        "vocab_size": VOCAB,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "dtype": "bfloat16",
        "hidden_act": "silu",
    }


def tensor_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    h, i = config["hidden_size"], config["intermediate_size"]
    shapes = {
        "model.embed_tokens.weight": (config["vocab_size"], h),
        "model.norm.weight": (h,),
        "lm_head.weight": (config["vocab_size"], h),
    }
    for n in range(config["num_hidden_layers"]):
        p = f"model.layers.{n}."
        shapes.update(
            {
                p + "input_layernorm.weight": (h,),
                p + "post_attention_layernorm.weight": (h,),
                **{p + f"self_attn.{m}.weight": (h, h) for m in ("q_proj", "k_proj", "v_proj", "o_proj")},
                p + "mlp.gate_proj.weight": (i, h),
                p + "mlp.up_proj.weight": (i, h),
                p + "mlp.down_proj.weight": (h, i),
            }
        )
    return shapes


def write_pair(folder: Path, config: dict, shard_bytes: float) -> tuple[Path, Path]:
    """Base and fine-tuned (base + small noise) checkpoints, sharded, with index and config."""
    base, tuned = folder / "base", folder / "tuned"
    shapes = tensor_shapes(config)
    shards, current, size = [], [], 0
    for name, shape in shapes.items():
        current.append(name)
        size += 2 * math.prod(shape)
        if size >= shard_bytes:
            shards.append(current)
            current, size = [], 0
    shards += [current] if current else []
    generator = torch.Generator().manual_seed(0)
    for out in (base, tuned):
        out.mkdir(parents=True)
        (out / "config.json").write_text(json.dumps(config))
    weight_map = {}
    for number, names in enumerate(shards, start=1):
        file = f"model-{number:05d}-of-{len(shards):05d}.safetensors"
        tensors = {
            n: torch.randn(shapes[n], generator=generator).mul_(0.02).to(torch.bfloat16) for n in names
        }
        save_file(tensors, str(base / file), metadata={"format": "pt"})
        tuned_tensors = {
            n: (t.float() + 0.001 * torch.randn(t.shape, generator=generator)).to(torch.bfloat16)
            for n, t in tensors.items()
        }
        save_file(tuned_tensors, str(tuned / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(names, file))
        del tensors, tuned_tensors
    for out in (base, tuned):
        (out / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {}, "weight_map": weight_map})
        )
    return base, tuned


READ_CHUNK = (
    1 << 21
)  # bytes copied at once by the read baselines: a reused buffer that fits in L2 (fastest here)


def plain_read(folders: list[Path]) -> None:
    """Every tensor of both checkpoints read once through the analysis's own access path (safetensors mmap
    views), nothing computed: each chunk is copied into one reused buffer, so every byte is really read
    and, unlike ``get_tensor(...).clone()``, no time goes to allocating and faulting in fresh memory."""
    buffer = torch.empty(READ_CHUNK, dtype=torch.uint8)
    for folder in folders:
        files = tensor_files(folder)
        for file in sorted(set(files.values())):
            with safe_open(file, framework="pt") as handle:
                for name in handle.keys():  # noqa: SIM118  (a safe_open handle is not iterable)
                    raw = handle.get_tensor(name).reshape(-1).view(torch.uint8)
                    for start in range(0, raw.numel(), READ_CHUNK):
                        chunk = raw[start : start + READ_CHUNK]
                        buffer[: chunk.numel()].copy_(chunk)


def raw_read(folders: list[Path]) -> None:
    """Every byte of the files read with read() into one reused buffer: the I/O bound, for reference."""
    buffer = memoryview(bytearray(READ_CHUNK))
    for folder in folders:
        for file in sorted(folder.glob("*.safetensors")):
            with file.open("rb", buffering=0) as handle:
                while handle.readinto(buffer):
                    pass


def naive(base: Path, tuned: Path) -> None:
    from transformers import AutoModelForCausalLM

    a = AutoModelForCausalLM.from_pretrained(tuned, dtype=torch.bfloat16)
    b = dict(AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16).named_parameters())
    with torch.no_grad():
        for name, param in a.named_parameters():
            float(torch.linalg.vector_norm(param.float() - b[name].float()))


def _anon_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def peak_anon_delta(function) -> tuple[float, int]:
    """(seconds, peak RssAnon above the starting value) while ``function`` runs."""
    start_rss, peak, running = _anon_rss(), [0], [True]

    def sample() -> None:
        while running[0]:
            peak[0] = max(peak[0], _anon_rss() - start_rss)
            time.sleep(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    function()
    seconds = time.perf_counter() - start
    running[0] = False
    thread.join()
    return seconds, max(peak[0], _anon_rss() - start_rss)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def measure(base: Path, tuned: Path, repeats: int, kernel: str) -> tuple[dict[str, list[float]], int]:
    """Seconds per repeat for the analysis and the read baselines, interleaved (rotating order) from the
    same warm page cache, so a burst of load from other processes hits all of them alike; then the
    analysis's peak memory in a separate run, so the sampling thread does not slow the timed ones."""
    runs = {
        "plain": lambda: plain_read([base, tuned]),
        "raw": lambda: raw_read([base, tuned]),
        "analysis": lambda: layer_changes(tuned, base, kernel=kernel),
        "eager": lambda: layer_changes(tuned, base, kernel="eager"),
    }
    for run in runs.values():
        run()  # warm the page cache, imports and the compiled kernel once for all
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for repeat in range(repeats):
        names = list(runs)[repeat % len(runs) :] + list(runs)[: repeat % len(runs)]
        for name in names:
            start = time.perf_counter()
            runs[name]()
            seconds[name].append(time.perf_counter() - start)
    return seconds, peak_anon_delta(runs["analysis"])[1]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Everything timed runs single-threaded, as the analysis does: on shared cores, torch's intra-op threads
    # made even the baseline's plain copies 2-5x slower, which would flatter the analysis.
    torch.set_num_threads(1)
    config = llama_config(args.size_gb)
    with tempfile.TemporaryDirectory(prefix="layer-diff-") as tmp:
        base, tuned = write_pair(Path(tmp), config, args.shard_gb * 1e9)
        total = sum(f.stat().st_size for d in (base, tuned) for f in d.glob("*.safetensors"))
        largest = sorted(2 * math.prod(s) for s in tensor_shapes(config).values())[-2:]
        kernel = resolve_kernel(args.kernel)
        times, peak = measure(base, tuned, args.repeats, kernel)
        naive_s = None if args.skip_naive else peak_anon_delta(lambda: naive(base, tuned))[0]
    read_s, raw_s, analysis_s, eager_s = (
        statistics.median(times[k]) for k in ("plain", "raw", "analysis", "eager")
    )
    budget = sum(largest) + 300e6
    print(
        f"synthetic Llama: {config['num_hidden_layers']} layers, hidden {HIDDEN}, vocab {VOCAB}; "
        f"2 checkpoints, {total / 1e9:.2f} GB in all (bf16, sharded); medians of {args.repeats} interleaved runs"
    )
    print(f"plain read (safetensors views, copied): {total / read_s / 1e9:6.2f} GB/s ({read_s:.3f} s)")
    print(f"raw read() of the files (reference):    {total / raw_s / 1e9:6.2f} GB/s ({raw_s:.3f} s)")
    print(
        f"layer analysis ({kernel} kernel): {total / analysis_s / 1e9:6.2f} GB/s ({analysis_s:.3f} s), {read_s / analysis_s:.0%} of "
        f"plain read  -> {verdict(analysis_s <= read_s / 0.6)} (target >= 60%); {raw_s / analysis_s:.0%} of raw read()"
    )
    print(
        f"eager kernel (reference): {total / eager_s / 1e9:6.2f} GB/s ({eager_s:.3f} s), {read_s / eager_s:.0%} of "
        "plain read"
    )
    print(
        f"peak memory (RssAnon delta): {peak / 1e6:.0f} MB vs two largest tensors + 300 MB = "
        f"{budget / 1e6:.0f} MB  -> {verdict(peak <= budget)}"
    )
    if naive_s is not None:
        print(
            f"naive (transformers, both full models): {naive_s:.2f} s, {naive_s / analysis_s:.1f}x slower  "
            f"-> {verdict(naive_s >= 3 * analysis_s)} (target >= 3x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
