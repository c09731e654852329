"""The publisher fails fast against a Hub it cannot use: the real CLI in a subprocess against the real
local Hub (or a closed port). Bad token, closed port, offline mode, a foreign namespace: exit 2 within
seconds, one line on stderr, nothing written. A Hub that stops answering mid-run ends the run after a
few requests, and a status line shows up under --no-progress."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from common.paths import PROJECT_ROOT
from localhub import serve_in_background
from localhub.background import free_port

TOKEN = "hf_preflight_test_token_0123456789"
USER = "preflighter"
QUICK = [
    "--set",
    "retry.base_delay_s=0.05",
    "--set",
    "retry.max_delay_s=0.2",
    "--set",
    "include.collection=false",
]
FAST_EXIT_S = 45.0  # interpreter start and imports included, on a loaded machine; the old code took hours


@pytest.fixture
def root(release_root: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "root"
    shutil.copytree(release_root, copy, ignore=shutil.ignore_patterns(".release", "hub"))
    return copy


def publish(root: Path, endpoint: str, token: str, namespace: str = USER, *extra: str, **env: str):
    command = [sys.executable, "-m", "release.publish", "--root", str(root), "--endpoint", endpoint]
    command += ["--namespace", namespace, "--no-progress", *QUICK, *extra]
    environment = {**os.environ, "HF_TOKEN": token, "HF_ENDPOINT": endpoint, **env}
    started = time.monotonic()
    done = subprocess.run(
        command, env=environment, capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT
    )
    return done, time.monotonic() - started


def assert_fails_fast(done: subprocess.CompletedProcess, seconds: float, message: str) -> None:
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.stderr[-3000:]
    assert seconds < FAST_EXIT_S
    assert TOKEN not in done.stdout + done.stderr


def nothing_published(endpoint: str) -> bool:
    api = HfApi(endpoint=endpoint, token=TOKEN)
    return not list(api.list_models(author=USER)) and not list(api.list_datasets(author=USER))


def test_bad_token_exits_2_after_one_whoami(root: Path, tmp_path: Path) -> None:
    with serve_in_background(tmp_path / "hub", tokens={TOKEN: USER}, faults={"rules": []}) as hub:
        done, seconds = publish(root, hub.endpoint, "hf_wrong_token_0123456789")
        assert_fails_fast(done, seconds, "rejected the token (401")
        assert hub.fault_counts()["requests"] == 1  # whoami, and nothing after it
        assert nothing_published(hub.endpoint)


def test_closed_port_exits_2(root: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    done, seconds = publish(root, endpoint, TOKEN)
    assert_fails_fast(done, seconds, f"cannot reach the Hub at {endpoint}")


def test_offline_mode_exits_2(root: Path, tmp_path: Path) -> None:
    with serve_in_background(tmp_path / "hub", tokens={TOKEN: USER}, faults={"rules": []}) as hub:
        done, seconds = publish(root, hub.endpoint, TOKEN, HF_HUB_OFFLINE="1")
        assert_fails_fast(done, seconds, "HF_HUB_OFFLINE is set")
        assert hub.fault_counts()["requests"] == 0


def test_namespace_without_write_access_exits_2(root: Path, tmp_path: Path) -> None:
    with serve_in_background(tmp_path / "hub", tokens={TOKEN: USER}) as hub:
        done, seconds = publish(root, hub.endpoint, TOKEN, "someone-else")
        assert_fails_fast(done, seconds, "may not write to namespace 'someone-else'")
        assert f"--namespace {USER}" in done.stderr


def test_hub_that_stops_answering_ends_the_run_after_a_few_requests(root: Path, tmp_path: Path) -> None:
    # whoami answers (the preflight passes), then every repo request loses its connection.
    faults = {"rules": [{"kind": "drop", "path": "^/api/(models|datasets|spaces)/"}]}
    with serve_in_background(tmp_path / "hub", tokens={TOKEN: USER}, faults=faults) as hub:
        done, seconds = publish(root, hub.endpoint, TOKEN, USER, "--concurrency", "2")
        assert_fails_fast(done, seconds, "requests in a row got no answer")
        dropped = hub.fault_counts()["total"]
    # The limit (5 in a row) plus what the other worker had in flight; before: 10 tries x 4 re-plans per repo.
    assert 5 <= dropped <= 8, dropped


def test_status_line_under_no_progress(root: Path, tmp_path: Path) -> None:
    slow = {"rules": [{"kind": "delay", "delay_s": 0.4, "path": "^/api/(models|datasets)/"}]}
    with serve_in_background(tmp_path / "hub", tokens={TOKEN: USER}, faults=slow) as hub:
        done, _ = publish(
            root,
            hub.endpoint,
            TOKEN,
            USER,
            "--set",
            "status_interval_s=0.5",
            "--set",
            "include.space=false",
        )
    assert done.returncode == 0, done.stderr[-3000:]
    status = [line for line in done.stderr.splitlines() if "] publishing: " in line]
    assert status and "HTTP requests" in status[-1], done.stderr[-3000:]
