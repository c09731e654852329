"""Benchmark the leaderboard Space in Debian's Chromium (Playwright): the time from a user's input to the
updated table, p50/p95, on the 1,027 real released rows and on 100,000 synthetic rows (the real rows
resampled with new ids), against a baseline measured in the same run: the same interaction as a Gradio
event (server-side ``build_view`` through Gradio's queue into a gr.Dataframe of 500 rows, as the Space
did before the table moved into the browser). Also: navigation to a visible table (1,027 rows) and the
CSV download of every row. Prints PASS/FAIL against the targets; exits 0 once everything was measured
(``--strict``: exit 1 on a FAIL).

    python benchmarks/space.py [--csv PATH] [--rows 100000] [--repeats 10] [--browser-runs 5] [--strict]
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.paths import SHARED_RELEASED_TABLE  # noqa: E402
from evaluation.importer import import_released  # noqa: E402
from release.results_dataset import build_results_dataset  # noqa: E402
from space.config import SpaceConfig  # noqa: E402
from space.data import Results, ResultsStore, read_results_folder  # noqa: E402
from space.table import Filters, build_view  # noqa: E402
from space.ui import build_app, launch  # noqa: E402

TARGET_SMALL_MS, TARGET_LARGE_MS, TARGET_VISIBLE_S = 100.0, 500.0, 3.0
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 120_000
# Search terms typed into the search box, in both apps (each changes the table).
TERMS = ["olmo", "qwen lima", "lora", "cosine math", "epoch-03", "llm-jp full", "gemma", "ultrachat 20000"]

# In-page timing of a real input (Playwright types, clicks, selects): from the input event's timestamp
# to the watched element's update (``expect``: once its text contains that; else any change of it, its
# ``data-view`` mark included) and the next painted frame.
ARM_JS = """([watchSelector, expect]) => {
  // Waiting for a text, the whole page is watched: Gradio may replace the element itself.
  const watched = expect === null ? document.querySelector(watchSelector) : document.body;
  const text = () => document.querySelector(watchSelector)?.innerText ?? "";
  const bench = {start: null};
  const KINDS = ["keydown", "input", "change", "click"];
  const onInput = (event) => { if (bench.start === null) bench.start = event.timeStamp; };
  for (const kind of KINDS) document.addEventListener(kind, onInput, {capture: true});
  bench.done = new Promise((resolve, reject) => {
    const observer = new MutationObserver(() => {
      if (expect === null || text().includes(expect)) { observer.disconnect(); resolve(); }
    });
    // Our table marks every rendered view (data-view), also one whose cells all stayed the same.
    observer.observe(watched, {childList: true, subtree: true, characterData: true, attributes: expect === null});
    setTimeout(() => { observer.disconnect(); reject(new Error(`no update of ${watchSelector}`)); }, 60000);
  }).finally(() => {
    for (const kind of KINDS) document.removeEventListener(kind, onInput, {capture: true});
  });
  window.__bench = bench;
}"""
WAIT_JS = """async () => {
  await window.__bench.done;
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
  return performance.now() - window.__bench.start;
}"""


Action = tuple[Callable[[], object] | None, Callable[[], object]]  # (unmeasured preparation, the input)


def timed(page, action: Action, watch: str, expect: str | None = None) -> float:
    prepare, act = action
    if prepare is not None:
        prepare()
    page.evaluate(ARM_JS, [watch, expect])
    act()
    return page.evaluate(WAIT_JS)


def typing(page, selector: str, term: str) -> Action:
    """All but the last character filled in unmeasured, the last one typed: one keystroke, measured
    (Gradio's textbox answers key presses, not a programmatic fill)."""
    return partial(page.fill, selector, term[:-1]), partial(page.keyboard.type, term[-1:])


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
    sample = tuned.sample(max(rows - len(base), 1), replace=True, random_state=seed).reset_index(drop=True)
    sample["model_id"] = sample["model_id"] + "#syn" + pd.Series(range(len(sample))).astype(str)
    return Results.from_leaderboard(pd.concat([base, sample], ignore_index=True))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def baseline_app(results: Results):
    """The former design: every event is a queued Gradio call that builds the view on the server and
    sends the first 500 rows to a gr.Dataframe."""
    with gr.Blocks(analytics_enabled=False) as demo:
        search = gr.Textbox(elem_id="search")
        message = gr.Markdown(elem_id="view-message")
        table = gr.Dataframe(interactive=False, elem_id="leaderboard-table")

        def on_search(text: str) -> list:
            view = build_view(results, Filters(search=text))
            return [f"**{view.count:,}** models for `{text}`", view.frame.head(500)]

        search.input(on_search, search, [message, table], show_progress="hidden")
    return demo


@contextmanager
def serving(demo) -> Iterator[str]:
    port = free_port()
    demo.launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False
    )
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def our_actions(page) -> list[Action]:
    """Typical inputs: searches, sorts, gains, a filter, a column group, an epoch bound, paging."""
    actions = [typing(page, "#search", term) for term in TERMS]
    actions.append((None, partial(page.fill, "#search", "")))
    inputs = [partial(page.select_option, "#f-sort", v) for v in ("gsm8k-4shot", "model", "average")]
    inputs += [partial(page.select_option, "#f-order", v) for v in ("asc", "desc")]
    inputs += [partial(page.check, f"#f-mode input[value={v}]") for v in ("gain", "raw")]
    inputs += [partial(page.click, "#f-methods input[value=lora]")] * 2
    inputs += [partial(page.click, "#f-family input[value=math]")] * 2
    inputs += [partial(page.fill, "#f-epoch-min", v) for v in ("3", "")]
    inputs += [partial(page.click, f"#lb-pager button[data-page={v}]") for v in ("next", "last", "first")]
    return actions + [(None, act) for act in inputs]


def open_ours(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#leaderboard [data-ready]", state="attached", timeout=TIMEOUT_MS)
    page.click("#f-methods summary")  # the method filter's options stay open for the clicks


def time_ours(page, url: str, repeats: int) -> np.ndarray:
    open_ours(page, url)
    # Every update rewrites the table: any mutation of it is the new view.
    return np.array(
        [timed(page, action, "#leaderboard-table") for _ in range(repeats) for action in our_actions(page)]
    )


def time_baseline(page, url: str, repeats: int) -> np.ndarray:
    page.goto(url)
    page.wait_for_selector("#search textarea", timeout=TIMEOUT_MS)
    # The answer names the term: the message shows it once the round trip is over.
    return np.array(
        [
            timed(page, typing(page, "#search textarea", term), "#view-message", term)
            for _ in range(repeats)
            for term in TERMS
        ]
    )


def time_visible(browser, url: str, runs: int) -> list[float]:
    """Seconds from navigation to the table's first rows, in fresh browser contexts."""
    timings = []
    for _ in range(runs + 1):  # the first run warms the server's caches and is not counted
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        start = time.perf_counter()
        page.goto(url)
        page.wait_for_selector("#leaderboard-table tbody tr", timeout=TIMEOUT_MS)
        timings.append(time.perf_counter() - start)
        context.close()
    return timings[1:]


def time_csv(page) -> tuple[float, int]:
    """Seconds from the click to the finished download of every row of the default view; its lines."""
    start = time.perf_counter()
    with page.expect_download(timeout=TIMEOUT_MS) as download:
        page.click("#export-csv")
    path = download.value.path()
    elapsed = time.perf_counter() - start
    with open(path, encoding="utf-8") as handle:
        return elapsed, sum(1 for _ in handle) - 1


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(label: str, ours: np.ndarray, baseline: np.ndarray, target_ms: float) -> bool:
    p50, p95 = np.percentile(ours, [50, 95])
    b50, b95 = np.percentile(baseline, [50, 95])
    ok = p95 < target_ms
    print(
        f"{label:<30} browser p50 {p50:7.1f} ms  p95 {p95:7.1f} ms | Gradio round trip p50 {b50:7.1f} ms"
        f"  p95 {b95:7.1f} ms | p95 ratio {b95 / max(p95, 1e-3):5.1f}x | target p95 < {target_ms:.0f} ms"
        f"  {verdict(ok)}"
    )
    return ok


def measure(browser, label: str, results: Results, target_ms: float, repeats: int) -> tuple[bool, object]:
    config = SpaceConfig(port=free_port())
    demo = build_app(ResultsStore(config, results))
    launch(demo, config, prevent_thread_lock=True, quiet=True)
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    page = context.new_page()
    try:
        url = f"http://127.0.0.1:{config.port}/"
        time_ours(page, url, 1)  # warm-up
        ours = time_ours(page, url, repeats)
        with serving(baseline_app(results)) as baseline_url:
            time_baseline(page, baseline_url, 1)
            baseline = time_baseline(page, baseline_url, repeats)
        ok = report(label, ours, baseline, target_ms)
        open_ours(page, url)
        seconds, lines = time_csv(page)
        print(f"{'':<30} CSV download of all {lines:,} rows: {seconds:.2f} s")
        return ok, (demo, url)
    finally:
        context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--csv", type=Path, default=SHARED_RELEASED_TABLE, help="the released results table")
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the synthetic leaderboard")
    parser.add_argument("--repeats", type=int, default=10, help="repeats of the list of interactions")
    parser.add_argument("--browser-runs", type=int, default=5, help="page loads timed to a visible table")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # each result as soon as it is measured
    with tempfile.TemporaryDirectory(prefix="space-bench-") as work:
        real = real_results(args.csv, Path(work))
    big = synthetic(real, args.rows)
    verdicts: list[bool] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for label, data, target in (
                (f"input -> table, {len(real.leaderboard):,} rows", real, TARGET_SMALL_MS),
                (f"input -> table, {len(big.leaderboard):,} rows", big, TARGET_LARGE_MS),
            ):
                ok, (demo, url) = measure(browser, label, data, target, args.repeats)
                verdicts.append(ok)
                if data is real:
                    timings = time_visible(browser, url, args.browser_runs)
                    median = float(np.median(timings))
                    ok = median < TARGET_VISIBLE_S
                    print(
                        f"{'navigation -> visible table':<30} median {median:.2f} s   worst {max(timings):.2f} s"
                        f"   target median < {TARGET_VISIBLE_S:.0f} s   {verdict(ok)}"
                    )
                    verdicts.append(ok)
                demo.close()
        finally:
            browser.close()
    print(f"overall: {verdict(all(verdicts))}")
    return 1 if args.strict and not all(verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
