"""Benchmark the leaderboard Space: server-side filter + sort + render time (p50/p95) on the 1,027 real
released rows and on 100,000 synthetic rows (the real rows resampled with new ids), and the time from
navigation to a visible table in Debian's Chromium. Prints PASS/FAIL against the targets.

    python benchmarks/space.py [--csv PATH] [--rows 100000] [--repeats 30] [--no-browser]
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.paths import SHARED_RELEASED_TABLE  # noqa: E402
from evaluation.importer import import_released
from release.results_dataset import build_results_dataset
from space.config import SpaceConfig  # noqa: E402
from space.data import Results, ResultsStore, read_results_folder  # noqa: E402
from space.table import GAIN, Filters, build_view, datatypes  # noqa: E402
from space.ui import build_app, launch

TARGET_SMALL_MS, TARGET_LARGE_MS, TARGET_VISIBLE_S = 50.0, 500.0, 3.0
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# What people do: the default view, a filter, a multi-term search, a sort by a score, gains, a family.
CASES: dict[str, Filters] = {
    "default": Filters(),
    "filter": Filters(methods=("full",), data_sizes=(1000,), epoch_min=2, epoch_max=8),
    "search": Filters(search="olmo lima cosine"),
    "sort": Filters(sort_by="gsm8k-4shot", descending=False),
    "gain": Filters(mode=GAIN, languages=("English",)),
    "family": Filters(families=("math", "code"), shots=("0",)),
}


def real_results(csv: Path, work: Path) -> Results:

    imported = import_released(csv)
    root = work / "root"
    root.mkdir(parents=True, exist_ok=True)
    imported.scores.to_parquet(root / "scores.parquet", index=False)
    return read_results_folder(build_results_dataset(root, work / "results"), source=str(csv))


def synthetic(results: Results, rows: int, seed: int = 0) -> Results:
    """``rows`` models resampled from the real fine-tuned rows (new ids), plus the real base rows."""
    board = results.leaderboard
    base = board[board["method"].eq("base").fillna(False)]
    tuned = board.drop(base.index)
    sample = tuned.sample(rows - len(base), replace=True, random_state=seed).reset_index(drop=True)
    sample["model_id"] = sample["model_id"] + "#syn" + pd.Series(range(len(sample))).astype(str)
    return Results.from_leaderboard(pd.concat([base, sample], ignore_index=True))


def time_views(results: Results, config: SpaceConfig, repeats: int) -> np.ndarray:
    """Milliseconds per event: build the view and serialise the rendered rows as Gradio sends them."""
    import gradio as gr

    samples = []
    for _ in range(repeats):
        for filters in CASES.values():
            start = time.perf_counter()
            view = build_view(results, filters, config)
            gr.Dataframe(datatype=datatypes(view.shown)).postprocess(view.shown)
            samples.append((time.perf_counter() - start) * 1000)
    return np.array(samples)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def time_browser(results: Results, runs: int) -> list[float]:
    """Seconds from navigation to the table's first rows, in fresh browser contexts."""
    from playwright.sync_api import sync_playwright

    config = SpaceConfig(port=free_port())
    demo = build_app(ResultsStore(config, results))
    launch(demo, config, prevent_thread_lock=True, quiet=True)
    timings = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            for _ in range(runs + 1):  # the first run warms the server's caches and is not counted
                context = browser.new_context(viewport={"width": 1400, "height": 900})
                page = context.new_page()
                start = time.perf_counter()
                page.goto(f"http://127.0.0.1:{config.port}/")
                page.wait_for_selector("#leaderboard-table .virtual-row .body-cell", timeout=60_000)
                page.wait_for_selector("#view-message strong", timeout=60_000)
                timings.append(time.perf_counter() - start)
                context.close()
            browser.close()
    finally:
        demo.close()
    return timings[1:]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(label: str, samples: np.ndarray, target_ms: float) -> bool:
    p50, p95 = np.percentile(samples, [50, 95])
    ok = p95 < target_ms
    print(
        f"{label:<34} p50 {p50:8.1f} ms   p95 {p95:8.1f} ms   target p95 < {target_ms:.0f} ms   {verdict(ok)}"
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--csv", type=Path, default=SHARED_RELEASED_TABLE, help="the released results table")
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the synthetic leaderboard")
    parser.add_argument("--repeats", type=int, default=30, help="repeats of each of the 6 view cases")
    parser.add_argument("--browser-runs", type=int, default=5, help="page loads timed in Chromium")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium measurement")
    args = parser.parse_args(argv)
    config = SpaceConfig()
    with tempfile.TemporaryDirectory(prefix="space-bench-") as work:
        real = real_results(args.csv, Path(work))
    big = synthetic(real, args.rows)
    results: list[bool] = []
    step: Callable[[str, Results, float], None]

    def step(label: str, data: Results, target: float) -> None:
        time_views(data, config, 2)  # warm-up
        results.append(report(label, time_views(data, config, args.repeats), target))

    step(f"filter+sort+render {len(real.leaderboard):,} rows", real, TARGET_SMALL_MS)
    step(f"filter+sort+render {len(big.leaderboard):,} rows", big, TARGET_LARGE_MS)
    if not args.no_browser:
        timings = time_browser(real, args.browser_runs)
        median = float(np.median(timings))
        ok = median < TARGET_VISIBLE_S  # the typical page load; the worst is printed too
        print(
            f"{'navigation -> visible table':<34} median {median:.2f} s   worst {max(timings):.2f} s   "
            f"target median < {TARGET_VISIBLE_S:.0f} s   {verdict(ok)}"
        )
        results.append(ok)
    print(f"overall: {verdict(all(results))}")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
