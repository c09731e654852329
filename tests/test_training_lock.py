"""One writer per training run: a worker dies with the `training run` that started it, and a re-run
skips a run whose lock a live worker holds. Real CLI processes, real training of one tiny demo job."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.paths import PROJECT_ROOT
from training.grid import filter_jobs, load_grid
from training.launch import run_lock
from training.trainer import is_finished

ONLY = "base_model_name=tiny-llama,dataset=demo_facts,method=full"


def command(root: Path) -> list[str]:
    return [sys.executable, "-m", "training", "run", "--grid", "demo", "--only", ONLY, "--root", str(root)]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1"}


def job():
    (only,) = filter_jobs(load_grid("demo"), ONLY)
    return only


def workers_of(root: Path) -> list[int]:
    """Live worker processes of this root (their command line names the task file under it)."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            if (
                entry.name.isdigit()
                and b"jobs.worker" in cmdline
                and any(str(root).encode() in a for a in cmdline)
            ):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
    return found


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def manifest_status(root: Path) -> str | None:
    with contextlib.suppress(OSError, ValueError, KeyError):
        return json.loads((root / "manifest.json").read_text())["jobs"][job().run_id]["status"]
    return None


@pytest.mark.slow
def test_killed_parent_takes_its_worker_and_a_rerun_finishes_cleanly(tmp_path: Path) -> None:
    root = tmp_path / "root"
    parent = subprocess.Popen(command(root), env=environment(), cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: manifest_status(root) == "running" and workers_of(root), 180, "the worker to train")
        assert not is_finished(job(), root)  # mid-run
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        wait_for(lambda: not workers_of(root), 5, "the orphaned worker to die")
        assert not is_finished(job(), root)  # it died with its parent instead of training on
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in workers_of(root):
            os.kill(pid, signal.SIGKILL)
    rerun = subprocess.run(
        command(root), env=environment(), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert is_finished(job(), root)
    logs = list((root / "logs").glob("*.log"))
    assert logs and all(b"\0" not in log.read_bytes() for log in logs)


def test_rerun_skips_a_run_whose_lock_a_live_worker_holds(tmp_path: Path) -> None:
    root = tmp_path / "root"
    with run_lock(job(), root) as holder:  # this test process plays the live worker
        assert holder is None
        with run_lock(job(), root) as second:
            assert second == os.getpid()  # a second taker learns who holds it
        rerun = subprocess.run(
            command(root), env=environment(), cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600
        )
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert re.search(r"^skipped +1$", rerun.stdout, re.M), rerun.stdout
        log = next((root / "logs").glob("*.log")).read_text()
        assert f"is being trained by process {os.getpid()}" in log
        assert manifest_status(root) == "pending"  # the live worker's status is not overwritten
        assert not list((root / "runs" / job().run_id).glob("epoch-*"))
