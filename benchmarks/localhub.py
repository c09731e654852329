"""Benchmark listing and browsing on the local Hub at the study's size against a small Hub, in one run.

Creates two storage roots directly through the storage layer (no HTTP: creating 10,000 refs through the
API would measure the API, not listing): --repos repos (default 1,000) with --branches branches each
(default 10, like a model's epoch branches) and --small repos (default 10) with as many branches. Serves
both at once, then times, alternating between them, through the real huggingface_hub client (and httpx for the HTML index):
  - list_models(limit=50)   a page of repos, as `python -m pipeline serve` asks for
  - list_models()           the whole listing (grows with the number of repos by nature)
  - list_repo_refs          one repo's branches and tags
  - index page              GET / (the first page of the HTML index)
and prints each call's p95 latency at both sizes and their ratio. Targets: the paged calls (all but the
whole listing) stay within --target-ratio of the small Hub's p95; the whole listing stays under
--listing-target-ms at the large size.

  python benchmarks/localhub.py                             # 1,000 repos x 10 branches vs 10
  python benchmarks/localhub.py --repos 30 --calls 10       # CI-sized
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402 - after the environment above: huggingface_hub reads it at import time
from huggingface_hub import HfApi  # noqa: E402

from localhub import serve_in_background  # noqa: E402
from localhub.storage import Storage  # noqa: E402

TOKEN, USER = "hf_benchmark_localhub", "bench"
PAGED_CALLS = ("list_models(limit=50)", "list_repo_refs", "index page")


@dataclass
class Timings:
    repos: int
    create_s: float
    p95_ms: dict[str, float]


def populate(root: Path, repos: int, branches: int) -> float:
    """``repos`` models with ``branches`` branches each (main included), straight into storage."""
    start = time.perf_counter()
    storage = Storage(root)
    for index in range(repos):
        repo = storage.create_repo("model", f"{USER}/model-{index:05d}", USER)
        head = repo.branches["main"]
        # All branches in one repo.json write: set_ref would rewrite it once per branch.
        repo.branches.update({f"epoch-{n:02d}": head for n in range(1, branches)})
        storage.save_repo(repo)
    return time.perf_counter() - start


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def call_plan(endpoint: str, repos: int, http: httpx.Client) -> dict[str, Callable[[], object]]:
    api = HfApi(endpoint=endpoint, token=TOKEN)
    names = [f"{USER}/model-{i:05d}" for i in range(repos)]
    rng = random.Random(0)
    return {
        "list_models(limit=50)": lambda: list(api.list_models(limit=50)),
        "list_models()": lambda: list(api.list_models()),
        "list_repo_refs": lambda: api.list_repo_refs(rng.choice(names)),
        "index page": lambda: http.get(f"{endpoint}/").raise_for_status(),
    }


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def measure(tmp: Path, sizes: list[int], branches: int, calls: int) -> list[Timings]:
    """Both Hubs served at once and called in turn, so that the load of a shared machine falls on
    both sizes alike."""
    created = [populate(tmp / f"hub-{size}", size, branches) for size in sizes]
    with ExitStack() as stack:
        http = stack.enter_context(httpx.Client(timeout=60))
        hubs = [
            stack.enter_context(serve_in_background(tmp / f"hub-{n}", tokens={TOKEN: USER})) for n in sizes
        ]
        plans = [call_plan(hub.endpoint, size, http) for hub, size in zip(hubs, sizes, strict=True)]
        samples: list[dict[str, list[float]]] = [{name: [] for name in plan} for plan in plans]
        for name in plans[0]:
            for _ in range(2):  # warm-up: connections, caches
                for plan in plans:
                    plan[name]()
            for _ in range(calls):
                for plan, taken in zip(plans, samples, strict=True):
                    taken[name].append(timed(plan[name]))
    return [
        Timings(size, create_s, {name: p95(values) for name, values in taken.items()})
        for size, create_s, taken in zip(sizes, created, samples, strict=True)
    ]


def report(small: Timings, large: Timings, args: argparse.Namespace) -> bool:
    print(
        f"\nlocalhub listing: {large.repos} repos x {args.branches} branches vs {small.repos} repos,"
        f" p95 of {args.calls} calls each"
    )
    print(
        f"  created {large.repos} repos in {large.create_s:.1f} s ({large.repos / large.create_s:.0f} repos/s)"
    )
    print(f"  {'call':<24}{f'{small.repos} repos':>12}{f'{large.repos} repos':>14}{'ratio':>9}  target")
    ok = True
    for name, small_ms in small.p95_ms.items():
        large_ms = large.p95_ms[name]
        ratio = large_ms / max(small_ms, 1e-6)
        if name in PAGED_CALLS:
            passed, target = ratio <= args.target_ratio, f"ratio <= {args.target_ratio:g}x"
        else:
            passed, target = large_ms <= args.listing_target_ms, f"<= {args.listing_target_ms:g} ms"
        ok &= passed
        print(
            f"  {name:<24}{small_ms:>9.1f} ms{large_ms:>11.1f} ms{ratio:>8.1f}x  {target}"
            f" {'PASS' if passed else 'FAIL'}"
        )
    print("PASS" if ok else "FAIL")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repos", type=int, default=1000, help="repos of the large Hub")
    parser.add_argument("--small", type=int, default=10, help="repos of the small Hub (the baseline)")
    parser.add_argument("--branches", type=int, default=10, help="branches per repo (main included)")
    parser.add_argument("--calls", type=int, default=50, help="timed calls per measurement")
    parser.add_argument("--target-ratio", type=float, default=3.0)
    parser.add_argument("--listing-target-ms", type=float, default=1000.0)
    args = parser.parse_args()
    if min(args.repos, args.small, args.branches, args.calls) < 1:
        print("error: --repos, --small, --branches and --calls must be positive", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="localhub-bench-") as tmp:
        small, large = measure(Path(tmp), [args.small, args.repos], args.branches, args.calls)
    report(small, large, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
