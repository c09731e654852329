"""Fault tolerance: the release completes correctly through injected faults (20% of requests fail) and
through repeated SIGKILLs, and the final Hub state equals that of an uninterrupted publish."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from localhub import serve_in_background
from tests.release_fixtures import tree_fingerprint

PROJECT = Path(__file__).resolve().parents[1]
TOKEN = "hf_fault_test_token"
NAMESPACE = "faulty"
# The Space carries the endpoint (a different server per run) and the collection is not a repo:
# compared are the model repos and the results dataset.
ARGS = [
    "--namespace",
    NAMESPACE,
    "--no-progress",
    "--set",
    "include.space=false",
    "--set",
    "include.collection=false",
    "--set",
    "retry.base_delay_s=0.05",
    "--set",
    "retry.max_delay_s=0.5",
]
FAULTS = {
    "seed": 7,
    "rules": [
        {"kind": "status", "status": 503, "probability": 0.08},
        {"kind": "status", "status": 429, "retry_after": 0, "probability": 0.05},
        {"kind": "status", "status": 500, "probability": 0.03},
        {"kind": "drop", "when": "after", "probability": 0.02},
        {"kind": "drop", "when": "before", "probability": 0.02},
    ],
}  # 20% of requests fail


def publish_cmd(root: Path, endpoint: str) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "HF_TOKEN": TOKEN, "HF_ENDPOINT": endpoint}
    return [sys.executable, "-m", "release.publish", "--root", str(root), "--endpoint", endpoint, *ARGS], env


def release_state(endpoint: str) -> dict[str, dict]:
    api = HfApi(endpoint=endpoint, token=TOKEN)
    repos = [(m.id, "model") for m in api.list_models(author=NAMESPACE)]
    repos += [(d.id, "dataset") for d in api.list_datasets(author=NAMESPACE)]
    state = {}
    for repo_id, repo_type in repos:
        branches = tree_fingerprint(api, repo_id, repo_type)
        commits = {b: len(api.list_repo_commits(repo_id, repo_type=repo_type, revision=b)) for b in branches}
        state[f"{repo_type}:{repo_id}"] = {"trees": branches, "commits": commits}
    return state


@pytest.fixture(scope="module")
def reference(release_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    base = tmp_path_factory.mktemp("reference")
    root = base / "root"
    shutil.copytree(release_root, root, ignore=shutil.ignore_patterns(".release", "hub"))
    with serve_in_background(base / "hub", tokens={TOKEN: NAMESPACE}) as hub:
        cmd, env = publish_cmd(root, hub.endpoint)
        assert subprocess.run(cmd, env=env, cwd=PROJECT, capture_output=True, timeout=600).returncode == 0
        state = release_state(hub.endpoint)
    assert len(state) == 4  # base model, full run, LoRA run, results dataset
    return state


@pytest.mark.slow
def test_publish_through_injected_faults(release_root, reference, tmp_path) -> None:
    root = tmp_path / "root"
    shutil.copytree(release_root, root, ignore=shutil.ignore_patterns(".release", "hub"))
    with serve_in_background(tmp_path / "hub", tokens={TOKEN: NAMESPACE}, faults=FAULTS) as hub:
        cmd, env = publish_cmd(root, hub.endpoint)
        run = subprocess.run(cmd, env=env, cwd=PROJECT, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        counts = hub.fault_counts()
        assert counts["total"] >= 5, counts  # faults really happened
        hub.reset_faults()
        assert release_state(hub.endpoint) == reference


def served_then_stalled(requests: int) -> dict:
    """Serve the first ``requests`` requests, then drop every connection unprocessed: however fast the
    publisher runs, it gets no further than that point until the test kills it."""
    return {
        "rules": [
            {"kind": "delay", "delay_s": 0, "probability": 1, "max_count": requests},
            {"kind": "drop", "when": "before", "probability": 1},
        ]
    }


@pytest.mark.slow
def test_killed_publish_resumes_to_the_same_state(release_root, reference, tmp_path) -> None:
    root = tmp_path / "root"
    shutil.copytree(release_root, root, ignore=shutil.ignore_patterns(".release", "hub"))
    rng = random.Random(3)
    with serve_in_background(tmp_path / "hub", tokens={TOKEN: NAMESPACE}) as hub:
        cmd, env = publish_cmd(root, hub.endpoint)
        exits = []
        # Four runs killed at random points measured in served requests (independent of machine speed);
        # together they serve fewer requests than one whole publish, so each is killed before the end.
        for kill_after in (rng.randint(3, 12) for _ in range(4)):
            hub.set_faults(served_then_stalled(kill_after))  # also zeroes the request counter
            process = subprocess.Popen(
                cmd, env=env, cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            while process.poll() is None and hub.fault_counts()["requests"] <= kill_after:
                time.sleep(0.01)
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
            exits.append(process.wait())
        assert exits == [-signal.SIGKILL] * 4, f"publishes ended before their kill (exit codes {exits})"
        hub.reset_faults()
        final = subprocess.run(cmd, env=env, cwd=PROJECT, capture_output=True, text=True, timeout=600)
        assert final.returncode == 0, final.stderr[-2000:]
        assert hub.fault_counts()["requests"] > 10  # the killed runs had left work to do
        assert release_state(hub.endpoint) == reference
