"""The README's main job, end to end: `python -m pipeline demo` (reduced) and `python -m pipeline study`
stage complete releases on the local Hub and serve them with the Space. Everything is checked from the
outside, the way a user would: Hub clients in a fresh process pointed at the staging Hub, and the
Space in a real browser."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

READY_LINE = "Press Ctrl-C"
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
DEMO_ONLY = "base_model_name=tiny-llama,dataset=demo_facts"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving_pipeline(args: list[str], timeout_s: float, **extra_env: str) -> Iterator[tuple[str, str, str]]:
    """Run ``python -m pipeline ARGS`` until it serves; yield (hub url, space url, its output so far)."""
    hub_port, space_port = _free_port(), _free_port()
    env = {**os.environ, "HF_TOKEN": "", "PYTHONUNBUFFERED": "1", **extra_env}
    env.pop("HF_ENDPOINT", None)  # no token and no endpoint: the release is staged locally
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            *args,
            "--hub-port",
            str(hub_port),
            "--space-port",
            str(space_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    output: list[str] = []
    deadline = time.monotonic() + timeout_s
    try:
        for line in process.stdout:
            output.append(line)
            if READY_LINE in line:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"pipeline not serving after {timeout_s:.0f} s:\n{''.join(output[-60:])}")
        else:
            pytest.fail(f"pipeline exited with {process.wait()} before serving:\n{''.join(output[-80:])}")
        yield f"http://127.0.0.1:{hub_port}", f"http://127.0.0.1:{space_port}", "".join(output)
    finally:
        process.terminate()
        process.wait(timeout=60)


def run_as_user(hub_url: str, code: str) -> dict:
    """Run ``code`` in a fresh interpreter pointed at the staging Hub; it prints one JSON object."""
    env = {**os.environ, "HF_ENDPOINT": hub_url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": ""}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _stops_answering(url: str, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2)
        except httpx.TransportError:
            return True
        time.sleep(0.5)
    return False


def space_status(space_url: str, expected: str) -> str:
    """The leaderboard's status line once it says ``expected``, read in Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(60_000)
        page.goto(space_url)
        page.wait_for_function(
            "t => (document.querySelector('#view-message') || {}).innerText?.includes(t)", arg=expected
        )
        text = page.inner_text("#view-message")
        browser.close()
    return text


@pytest.mark.slow
def test_demo_pipeline_stages_a_complete_release(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    args = ["demo", "--root", str(root), "--only", DEMO_ONLY, "--limit", "8"]
    # Offline users set HF_HUB_OFFLINE=1: the pipeline still stages to and serves its local Hub.
    with serving_pipeline(args, timeout_s=1500, HF_HUB_OFFLINE="1") as (hub_url, space_url, output):
        # one set of instructions, with the ports actually served
        assert "127.0.0.1:8900" not in output and output.count("export HF_ENDPOINT=") == 1
        assert f"export HF_ENDPOINT={hub_url} " in output and f"leaderboard Space : {space_url}" in output
        assert "Overwriting default num_fewshot" not in output
        for stage in (
            "prepare data",
            "train",
            "evaluate",
            "perplexity",
            "layer statistics",
            "model map",
            "analysis report",
            "stage the release",
        ):
            assert f"=== {stage}: done" in output
        assert (root / "report" / "report.html").exists()
        found = run_as_user(
            hub_url,
            """
            import json
            import datasets
            from huggingface_hub import HfApi
            from peft import PeftModel
            from transformers import AutoModelForCausalLM, AutoTokenizer
            api = HfApi()
            repos = [m.id for m in api.list_models()]
            full = next(r for r in repos if r.endswith("-full-200-cosine"))
            lora = next(r for r in repos if r.endswith("-lora-200-cosine"))
            base = next(r for r in repos if r.endswith("/tiny-llama"))
            model = AutoModelForCausalLM.from_pretrained(full, revision="epoch-02")
            AutoTokenizer.from_pretrained(full)
            adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), lora,
                                                revision="epoch-04")
            board = datasets.load_dataset("massive-sft-demo/massive-sft-results", "leaderboard", split="train")
            print(json.dumps({"branches": sorted(b.name for b in api.list_repo_refs(full).branches),
                              "params": model.num_parameters(), "adapter": type(adapter).__name__,
                              "models": sorted(board["model_id"])}))
        """,
        )
        assert found["branches"] == ["epoch-02", "epoch-04", "main"]
        assert found["params"] > 0 and found["adapter"] == "PeftModelForCausalLM"
        # the base model and both kept epochs of both runs
        assert len(found["models"]) == 5 and "tiny-llama" in found["models"]
        page = httpx.get(space_url, timeout=30)
        assert page.status_code == 200 and "gradio" in page.text.lower()

    # Terminating the pipeline stops the servers it started.
    assert _stops_answering(hub_url) and _stops_answering(space_url)

    rerun = subprocess.run(
        [sys.executable, "-m", "pipeline", *args, "--no-serve"],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_TOKEN": ""},
        timeout=900,
    )
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert re.search(r"done\s+0\s+skipped\s+2\s+failed\s+0", rerun.stdout), rerun.stdout[-3000:]
    assert "evaluated 0 (model, benchmark, shots)" in rerun.stdout
    assert re.search(r"^commits 0,", rerun.stdout, re.M), rerun.stdout[-3000:]  # re-staging commits nothing


@pytest.mark.slow
@pytest.mark.browser
def test_study_pipeline_serves_the_released_models(tmp_path: Path, released_table: Path) -> None:
    args = ["study", "--csv", str(released_table), "--root", str(tmp_path / "study")]
    with serving_pipeline(args, timeout_s=1500) as (hub_url, space_url, _):
        found = run_as_user(
            hub_url,
            """
            import json
            import datasets
            board = datasets.load_dataset("massive-sft/massive-sft-results", "leaderboard", split="train")
            print(json.dumps({"models": board.num_rows, "bases": sum(m == "base" for m in board["method"])}))
        """,
        )
        assert found == {"models": 1027, "bases": 11}
        assert "of 1,027 models" in space_status(space_url, "of 1,027 models")
