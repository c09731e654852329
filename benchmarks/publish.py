"""Benchmark the release publisher against a naive loop on the local Hub server.

Builds an output root with --repos tiny full-model runs (3 kept epochs each), then, in one run:
  1. naive: one `upload_folder` per revision in a plain loop (create repo, upload main, then per epoch
     create the branch and upload the epoch folder), into its own namespace;
  2. `release.publish` (diffed, concurrent) of the same models into another namespace;
  3. a no-op re-publish.
Targets: publish >= 3x faster than naive; the no-op re-publish < 10% of the first publish.

  python benchmarks/publish.py --repos 200
  python benchmarks/publish.py --repos 20 --concurrency 8      # CI-sized
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TOKEN = "hf_benchmark_token"


def naive(api, root: Path, namespace: str, folders: list[tuple[str, list[Path]]]) -> float:
    from tqdm.auto import tqdm

    started = time.perf_counter()
    for name, epochs in tqdm(folders, desc="naive", unit="repo"):
        repo = f"{namespace}/{name}"
        api.create_repo(repo, exist_ok=True)
        api.upload_folder(repo_id=repo, folder_path=epochs[-1], revision="main")
        for folder in epochs:
            api.create_branch(repo, branch=folder.name, exist_ok=True)
            api.upload_folder(repo_id=repo, folder_path=folder, revision=folder.name)
    return time.perf_counter() - started


def publish(root: Path, endpoint: str, namespace: str, concurrency: int) -> tuple[float, int, int]:
    from release.config import load_config
    from release.inputs import load_inputs
    from release.publish import Target, publish as run_publish

    overrides = [f"namespace={namespace}", f"concurrency={concurrency}", "include.space=false",
                 "include.results_dataset=false", "include.collection=false", "budget.rate_per_s=100000",
                 "budget.burst=100000"]
    config = load_config("demo", overrides)
    started = time.perf_counter()
    outcome = run_publish(load_inputs(root, config), config, Target(endpoint, TOKEN))
    seconds = time.perf_counter() - started
    if outcome.failed:
        raise SystemExit(f"publish failed: {[r.error for r in outcome.failed][:3]}")
    return seconds, outcome.commits, outcome.stats.total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repos", type=int, default=200, help="model repos (3 epoch branches each)")
    parser.add_argument("--concurrency", type=int, default=16, help="publisher workers")
    parser.add_argument("--workdir", type=Path, help="keep the root and the hub here (default: a temp dir)")
    args = parser.parse_args()

    from huggingface_hub import HfApi
    from huggingface_hub.utils import disable_progress_bars

    from release.fixtures import synthetic_repo_root
    from release.localhub import serve_in_background
    from training.tiny import build_tiny_model

    disable_progress_bars()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-publish-"))
    base = build_tiny_model(work / "tiny-base", hidden_size=16, num_layers=1, vocab_size=300)
    root = work / "root"
    if not (root / "runs").exists():
        synthetic_repo_root(root, base, args.repos)
    runs = sorted((root / "runs").iterdir())[: args.repos]
    folders = [(run.name.split("__")[1].replace("_", "-"), sorted(run.glob("epoch-*"))) for run in runs]
    with serve_in_background(work / "hub", tokens={TOKEN: "bench"}) as hub:
        api = HfApi(endpoint=hub.endpoint, token=TOKEN)
        naive_s = naive(api, root, "naive", folders)
        first_s, commits, requests = publish(root, hub.endpoint, "fast", args.concurrency)
        noop_s, noop_commits, noop_requests = publish(root, hub.endpoint, "fast", args.concurrency)
    speedup, noop_share = naive_s / first_s, noop_s / first_s
    print(f"\nrepos: {len(folders)} (+1 base model), 3 epoch branches each")
    print(f"naive loop (upload_folder per revision): {naive_s:8.1f}s")
    print(f"release.publish:                        {first_s:8.1f}s  ({commits} commits, {requests} requests)"
          f"  speed-up {speedup:.2f}x (target >= 3x)")
    print(f"no-op re-publish:                       {noop_s:8.1f}s  ({noop_commits} commits, {noop_requests} "
          f"requests)  {100 * noop_share:.1f}% of the first (target < 10%)")
    ok = speedup >= 3 and noop_share < 0.10 and noop_commits == 0
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
