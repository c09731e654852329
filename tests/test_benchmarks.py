"""The benchmark scripts run in CI at a small size. The rule for every test here: a benchmark must run to
its end (exit 0) and report each of its measurements, baselines and ratios with a number; its verdicts
(PASS/FAIL against the targets) are left to its output and judged on quiet machines at full size (these
CI machines are shared and noisy, and a tiny size says nothing about the targets). So a test asserts
what is reported, never which verdict was printed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_benchmark(name: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args], capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def assert_reports(output: str, *patterns: str) -> None:
    """Every pattern matches a line of the output (each a measurement with its number)."""
    for pattern in patterns:
        assert re.search(pattern, output, re.MULTILINE), f"{pattern!r} not reported:\n{output}"


@pytest.mark.slow
def test_layer_diff_benchmark_reports_its_three_targets() -> None:
    output = run_benchmark("layer_diff.py", "--size-gb", "0.05", "--repeats", "2")
    verdicts = re.findall(r"\b(PASS|FAIL)\b", output)
    assert len(verdicts) >= 3, output  # throughput, peak memory, speed-up over the naive implementation
    assert re.search(r"naive", output, re.IGNORECASE)
    assert re.search(r"layer analysis \((compiled|eager) kernel\)", output), output


@pytest.mark.slow
def test_perplexity_benchmark_compares_with_the_reference() -> None:
    output = run_benchmark("perplexity.py", "--samples", "48", "--runs", "3", "--threads", "1")
    number = r"\d+(\.\d+)?"
    assert_reports(
        output,
        r"1 torch threads for both sides, 3 interleaved runs",
        rf"^batched .*{number} tokens/s median \({number} s; runs: {number} {number} {number} s\)",
        rf"^per-sample reference: .*{number} tokens/s median",
        rf"^speed-up: {number}x median of the per-run ratios \(min {number}x, max {number}x\)",
    )


@pytest.mark.slow
@pytest.mark.browser
def test_space_benchmark_measures_in_chromium_against_gradio() -> None:
    output = run_benchmark("space.py", "--rows", "1500", "--repeats", "1", "--browser-runs", "1")
    number = r"\d+(\.\d+)?"
    for rows in ("1,027", "1,500"):
        assert_reports(
            output,
            rf"input -> table, {rows} rows +browser p50 +{number} ms +p95 +{number} ms "
            rf"\| Gradio round trip p50 +{number} ms +p95 +{number} ms \| p95 ratio +{number}x",
            rf"CSV download of all {rows} rows: {number} s",
        )
    assert_reports(output, rf"navigation -> visible table +median {number} s", r"^overall: ")


@pytest.mark.slow
def test_localhub_benchmark_compares_listing_at_two_sizes() -> None:
    output = run_benchmark("localhub.py", "--repos", "30", "--small", "3", "--branches", "3", "--calls", "5")
    for call in ("list_models(limit=50)", "list_models()", "list_repo_refs", "index page"):
        assert re.search(rf"{re.escape(call)}\s+[\d.]+ ms\s+[\d.]+ ms\s+[\d.]+x", output), (call, output)
    assert "created 30 repos" in output and re.search(r"\b(PASS|FAIL)\b", output)


@pytest.mark.slow
def test_publish_benchmark_reports_requests_and_both_naive_loops() -> None:
    output = run_benchmark("publish.py", "--repos", "3", "--latency-ms", "10")
    for label in ("naive loop", "naive loop, threaded", "publisher"):
        assert re.search(
            rf"{re.escape(label)}\s+[\d.]+ requests per model\s+[\d.]+ per kept epoch", output
        ), (
            label,
            output,
        )
        assert re.search(rf"{re.escape(label)}\s+[\d.]+ req/model .* h at the rate limit", output), output
    assert "1,000 API requests per 5 minutes" in output and "1,070 models" in output, output
    assert re.search(r"configs/release/demo.yaml as shipped \(concurrency \d+", output), output
    assert re.search(r"faster than the naive loop: [\d.]+x .*vs the threaded loop: [\d.]+x", output), output
    assert re.search(r"without the state file [\d.]+ \(0 commits\)", output), output
    assert re.search(
        r"no-op re-publish of all 4 repos: \d+ requests with the state file, \d+ without it", output
    )
