"""Benchmark the release publisher against a naive loop on the local Hub server.

Builds an output root with --repos tiny full-model runs (3 kept epochs each), then, at 0 ms and at
--latency-ms of injected per-request latency, on a fresh local Hub each time (no blob shared between the
two contenders):
  1. naive: one `upload_folder` per revision in a plain loop (create repo, upload main, then per epoch
     create the branch and upload the epoch folder);
  2. `release.publish` (diffed, concurrent) of the same models;
  3. a no-op re-publish.
Targets, judged at --latency-ms: publish >= 3x faster than naive; no-op re-publish < 10% of the first.

Why a latency: the local server runs on 127.0.0.1 in this process, so a request costs only CPU (of a
machine that may have 2 cores) and no round trip. On the real Hub every request costs a round trip
(typically 50-200 ms), which is what the publisher's concurrency across repos hides and a sequential
loop pays in full. The latency is the server's fault injection (a `delay` rule, probability 1): the same
fixed delay for every request of both contenders. At 0 ms both are CPU-bound and the publisher, which also
renders cards, hashes files and verifies every revision, gains little.

  python benchmarks/publish.py                                 # 200 repos, 0 ms and 50 ms
  python benchmarks/publish.py --repos 20 --latency-ms 100     # CI-sized
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# After the environment above: huggingface_hub (imported by these) reads it at import time.
from tqdm.auto import tqdm  # noqa: E402

from localhub import serve_in_background  # noqa: E402
from release.config import load_config  # noqa: E402
from release.inputs import load_inputs  # noqa: E402
from release.publish import Target  # noqa: E402
from release.publish import publish as run_publish  # noqa: E402
from tests.release_fixtures import synthetic_repo_root  # noqa: E402
from training.tiny import build_tiny_model  # noqa: E402

TOKEN = "hf_benchmark_token"
SPEEDUP_TARGET, NOOP_TARGET = 3.0, 0.10


@dataclass
class PassResult:
    latency_ms: float
    naive_s: float
    naive_requests: int
    first_s: float
    first_requests: int
    commits: int
    noop_s: float
    noop_requests: int
    noop_commits: int

    @property
    def speedup(self) -> float:
        return self.naive_s / self.first_s

    @property
    def noop_share(self) -> float:
        return self.noop_s / self.first_s


def naive(api: Any, namespace: str, folders: list[tuple[str, list[Path]]]) -> float:

    started = time.perf_counter()
    for name, epochs in tqdm(folders, desc="naive", unit="repo"):
        repo = f"{namespace}/{name}"
        api.create_repo(repo, exist_ok=True)
        api.upload_folder(repo_id=repo, folder_path=epochs[-1], revision="main")
        for folder in epochs:
            api.create_branch(repo, branch=folder.name, exist_ok=True)
            api.upload_folder(repo_id=repo, folder_path=folder, revision=folder.name)
    return time.perf_counter() - started


def publish(root: Path, endpoint: str, namespace: str, concurrency: int, work_dir: Path) -> tuple[float, int]:

    overrides = [
        f"namespace={namespace}",
        f"concurrency={concurrency}",
        "include.space=false",
        "include.results_dataset=false",
        "include.collection=false",
        "budget.rate_per_s=100000",
        "budget.burst=100000",
    ]
    config = load_config("demo", overrides)
    started = time.perf_counter()
    outcome = run_publish(load_inputs(root, config), config, Target(endpoint, TOKEN), work_dir=work_dir)
    seconds = time.perf_counter() - started
    if outcome.failed:
        raise SystemExit(f"publish failed: {[r.error for r in outcome.failed][:3]}")
    return seconds, outcome.commits


def run_pass(
    work: Path, root: Path, folders: list[tuple[str, list[Path]]], latency_ms: float, concurrency: int
) -> PassResult:
    """Both contenders on their own fresh Hub with the same injected latency; requests counted by the server."""
    from huggingface_hub import HfApi

    faults = {"seed": 0, "rules": [{"kind": "delay", "delay_s": latency_ms / 1000, "probability": 1.0}]}
    tag = f"{latency_ms:g}ms"
    for path in (work / f"hub-naive-{tag}", work / f"hub-publish-{tag}", work / f"release-{tag}"):
        shutil.rmtree(path, ignore_errors=True)  # cold: no blob, state or hash cache from an earlier run
    with serve_in_background(
        work / f"hub-naive-{tag}", tokens={TOKEN: "bench"}, faults=faults if latency_ms else None
    ) as hub:
        naive_s = naive(HfApi(endpoint=hub.endpoint, token=TOKEN), "naive", folders)
        naive_requests = hub.fault_counts()["requests"]
    with serve_in_background(
        work / f"hub-publish-{tag}", tokens={TOKEN: "bench"}, faults=faults if latency_ms else None
    ) as hub:
        first_s, commits = publish(root, hub.endpoint, "fast", concurrency, work / f"release-{tag}")
        first_requests = hub.fault_counts()["requests"]
        noop_s, noop_commits = publish(root, hub.endpoint, "fast", concurrency, work / f"release-{tag}")
        noop_requests = hub.fault_counts()["requests"] - first_requests
    return PassResult(
        latency_ms,
        naive_s,
        naive_requests,
        first_s,
        first_requests,
        commits,
        noop_s,
        noop_requests,
        noop_commits,
    )


def report(results: list[PassResult], repos: int) -> bool:
    print(
        f"\n{repos} model repos (+1 base model repo for the publisher), 3 epoch branches each; "
        f"requests counted by the server"
    )
    print(
        f"{'latency':>8} {'naive':>9} {'req/repo':>8} {'publish':>9} {'req/repo':>8} {'speed-up':>8} "
        f"{'no-op':>8} {'req/repo':>8} {'no-op/first':>11}"
    )
    for r in results:
        print(
            f"{r.latency_ms:>6g}ms {r.naive_s:>8.1f}s {r.naive_requests / repos:>8.1f} {r.first_s:>8.1f}s "
            f"{r.first_requests / (repos + 1):>8.1f} {r.speedup:>7.2f}x {r.noop_s:>7.1f}s "
            f"{r.noop_requests / (repos + 1):>8.1f} {100 * r.noop_share:>10.1f}%"
        )
    judged = results[-1]
    speed_ok = judged.speedup >= SPEEDUP_TARGET
    noop_ok = judged.noop_share < NOOP_TARGET and judged.noop_commits == 0
    print(f"\nTargets, judged at {judged.latency_ms:g} ms per request (a typical round trip to the Hub):")
    print(
        f"  publish >= {SPEEDUP_TARGET:g}x faster than the naive loop: {judged.speedup:.2f}x "
        f"{'PASS' if speed_ok else 'FAIL'}"
    )
    print(
        f"  no-op re-publish < {100 * NOOP_TARGET:g}% of the first, 0 commits: {100 * judged.noop_share:.1f}%, "
        f"{judged.noop_commits} commits {'PASS' if noop_ok else 'FAIL'}"
    )
    if len(results) > 1:
        print(
            "At 0 ms there is no round trip to hide: both are bound by the CPU of this machine (client and "
            "server share it), and the publisher also renders cards, hashes files and verifies every "
            "revision; that row is for information."
        )
    print("PASS" if speed_ok and noop_ok else "FAIL")
    return speed_ok and noop_ok


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repos", type=int, default=200, help="model repos (3 epoch branches each)")
    parser.add_argument("--concurrency", type=int, default=16, help="publisher workers")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=50.0,
        help="per-request delay injected by the server for both contenders, where the targets "
        "are judged (default 50: a typical round trip to the Hub; 0: only the 0 ms pass)",
    )
    parser.add_argument("--workdir", type=Path, help="keep the root and the hubs here (default: a temp dir)")
    args = parser.parse_args()

    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-publish-"))
    base = build_tiny_model(work / "tiny-base", hidden_size=16, num_layers=1, vocab_size=300)
    root = work / "root"
    if len(list((root / "runs").glob("*"))) < args.repos:
        shutil.rmtree(root, ignore_errors=True)
        synthetic_repo_root(root, base, args.repos)
    runs = sorted((root / "runs").iterdir())[: args.repos]
    folders = [(run.name.split("__")[1].replace("_", "-"), sorted(run.glob("epoch-*"))) for run in runs]
    latencies = sorted({0.0, args.latency_ms})
    results = [run_pass(work, root, folders, latency, args.concurrency) for latency in latencies]
    return 0 if report(results, len(folders)) else 1


if __name__ == "__main__":
    sys.exit(main())
