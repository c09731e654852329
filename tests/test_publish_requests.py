"""How many requests publishing costs: on the real Hub the bound of a 1,000-repo release is the rate limit
(1,000 API requests per 5 minutes on a free account), so every request the publisher does not need is
time. The real huggingface_hub client against a private local Hub server; requests counted by kind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from common.io import read_json, write_json
from common.paths import PROJECT_ROOT
from localhub import LocalHubHandle, serve_in_background
from release.config import load_config
from release.inputs import load_inputs
from release.publish import PublishOutcome, Target, publish
from tests.release_fixtures import synthetic_repo_root

TOKEN = "hf_requests_test_token"
MODELS, EPOCHS = 3, 3
REPOS = MODELS + 1  # and the base model's repo
# Commits: one per branch, main (written last, its card sealing the whole repo) and every epoch; base: main.
COMMITS = MODELS * (EPOCHS + 1) + 1
# A first publish per repo: read refs (404), create, one preupload and one LFS batch for all revisions,
# one upload per new weight blob, one commit per revision, one branch per epoch; no tree read, no second
# refs read, no validate-yaml. A model repo with 3 epochs: 1 + 1 + 2 + 2 * 3 (LFS upload + verify; main
# shares the last epoch's blob) + 4 + 3 = 17; the base repo: 1 + 1 + 2 + 2 + 1 = 7; 58 for 4 repos, plus
# one listing of the namespace's models: at most 15 per repo.
FIRST_PER_REPO = 15
# A no-op re-publish, with or without the state file: one listing of the namespace's models (main heads
# and card fingerprints of up to 1,000 repos per page), nothing per repo.
NOOP_REQUESTS = 1


@pytest.fixture(scope="module")
def hub_and_root(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("requests")
    root = synthetic_repo_root(work / "root", tiny_llama, MODELS, epochs=EPOCHS)
    with serve_in_background(work / "hub", tokens={TOKEN: "bench"}) as hub:
        yield hub, root, work


def run(root: Path, endpoint: str, work_dir: Path, *, may_fail: bool = False) -> PublishOutcome:
    overrides = ["namespace=bench", "include.space=false", "include.results_dataset=false"]
    config = load_config("demo", [*overrides, "include.collection=false"])
    outcome = publish(load_inputs(root, config), config, Target(endpoint, TOKEN), work_dir=work_dir)
    assert may_fail or not outcome.failed, [r.error for r in outcome.failed]
    return outcome


def server_requests(hub: LocalHubHandle, action: Callable[[], PublishOutcome]) -> tuple[PublishOutcome, int]:
    """``action``'s outcome and the requests the server answered meanwhile (not the client's count)."""
    before = hub.fault_counts()["requests"]
    outcome = action()
    return outcome, hub.fault_counts()["requests"] - before


def test_first_noop_and_stateless_republish_request_counts(hub_and_root) -> None:
    hub, root, work = hub_and_root
    state = work / "release"
    shutil.rmtree(state, ignore_errors=True)

    first = run(root, hub.endpoint, state)
    counts = first.stats.counts
    assert first.commits == COMMITS == counts["POST /commit"]
    assert counts["GET /refs"] == REPOS and counts["POST /api/repos/create"] == REPOS
    assert counts["POST /branch"] == MODELS * EPOCHS and counts["GET listing"] == 1
    assert counts["GET /tree"] == 0 and counts["POST /validate-yaml"] == 0
    assert first.stats.total <= FIRST_PER_REPO * REPOS, dict(counts)

    # Counted by the server: huggingface_hub itself may ask huggingface.co for its agent registry once.
    noop, requests = server_requests(hub, lambda: run(root, hub.endpoint, state))
    assert noop.commits == 0 and requests == NOOP_REQUESTS, dict(noop.stats.counts)

    (state / "state.json").unlink()  # a fresh machine: the listing alone proves every repo unchanged
    stateless, requests = server_requests(hub, lambda: run(root, hub.endpoint, state))
    assert stateless.commits == 0 and requests == NOOP_REQUESTS, dict(stateless.stats.counts)
    assert server_requests(hub, lambda: run(root, hub.endpoint, state))[1] == NOOP_REQUESTS


MANY = 30  # model repos (and the base model's) for the fresh-machine checks


@pytest.fixture(scope="module")
def many(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("many")
    root = synthetic_repo_root(work / "root", tiny_llama, MANY, epochs=2)
    with serve_in_background(work / "hub", tokens={TOKEN: "bench"}) as hub:
        run(root, hub.endpoint, work / "release")
        yield hub, root, work


def statuses(outcome: PublishOutcome) -> dict[str, tuple[str, int]]:
    """repo -> (status, commits), for the repos that were not skipped."""
    return {r.repo_id: (r.status, r.commits) for r in outcome.results if r.status != "skipped"}


def test_a_fresh_machine_proves_many_unchanged_repos_with_a_handful_of_requests(many) -> None:
    hub, root, work = many
    (work / "release" / "state.json").unlink(missing_ok=True)
    outcome, requests = server_requests(hub, lambda: run(root, hub.endpoint, work / "release"))
    assert outcome.commits == 0 and statuses(outcome) == {}
    assert len(outcome.results) == MANY + 1
    # O(1), not O(repos): one listing of the namespace's models (1,000 repos a page); measured: 1.
    assert requests <= MANY / 5 + 2 and requests == 1, dict(outcome.stats.counts)


def test_a_fresh_machine_finds_what_changed_and_what_an_interrupted_run_left(many) -> None:
    """A changed epoch (not the last: main's files stay the same) is found from main's card alone, and so
    is a repo whose run died after committing the epoch but before main: main, written last, still
    carries the old fingerprint. Both from a fresh machine, without the state file."""
    hub, root, work = many
    config = load_config("demo", ["namespace=bench"])
    groups = load_inputs(root, config).groups
    changed, interrupted = groups[0], groups[1]
    for group in (changed, interrupted):
        write_json(group.checkpoints[0].folder / "extra.json", {"changed": True})
    hub.set_faults(
        {
            "rules": [
                {
                    "kind": "status",
                    "status": 400,
                    "methods": ["POST"],
                    "path": f"{interrupted.repo_id}/commit/main$",
                }
            ]
        }
    )
    try:
        died = run(root, hub.endpoint, work / "release", may_fail=True)
    finally:
        hub.reset_faults()
    assert [r.repo_id for r in died.failed] == [interrupted.repo_id]
    assert statuses(died)[changed.repo_id] == ("updated", 2)  # epoch-01 and main (its card)

    (work / "release" / "state.json").unlink(missing_ok=True)
    resumed = run(root, hub.endpoint, work / "release")
    assert statuses(resumed) == {interrupted.repo_id: ("updated", 1)}  # main only: epoch-01 was done
    assert resumed.stats.counts["GET listing"] == 1 and resumed.stats.counts["GET /refs"] == 1

    # With the state file, a hand edit of main (its card kept) is found too: main moved since verified.
    api = HfApi(endpoint=hub.endpoint, token=TOKEN)
    edited = groups[2].repo_id
    api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=edited)
    repaired = run(root, hub.endpoint, work / "release")
    assert statuses(repaired) == {edited: ("updated", 1)}
    assert run(root, hub.endpoint, work / "release").commits == 0


STUDY_ROWS = 60  # of the released table: 60 evaluated models, 11 card-only repos with their epoch branches


def stage_study(root: Path) -> dict:
    """``pipeline study``'s release stage: the study config, staged into ROOT/hub by the CLI."""
    command = [sys.executable, "-m", "release.publish", "--root", str(root), "--config", "study", "--stage"]
    staged = subprocess.run(
        [*command, "--no-progress", "--no-instructions"],
        env={**os.environ, "HF_TOKEN": "", "HF_HUB_OFFLINE": "0"},
        capture_output=True,
        text=True,
        timeout=600,
        cwd=PROJECT_ROOT,
    )
    assert staged.returncode == 0, staged.stdout[-2000:] + staged.stderr[-2000:]
    return read_json(root / ".release" / "last_publish.json")


def test_restaging_the_study_unchanged_is_a_no_op_in_requests(released_table: Path, tmp_path: Path) -> None:
    """Re-staging `pipeline study` (models, results dataset, Space, collection) with nothing changed: no
    commit, and a constant handful of requests (listings and the collection), none per repo."""
    table = tmp_path / "table.csv"
    table.write_text("".join(released_table.read_text().splitlines(keepends=True)[: STUDY_ROWS + 1]))
    root = tmp_path / "study"
    imported = subprocess.run(
        [sys.executable, "-m", "evaluation", "import-released", "--csv", str(table), "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
    )
    assert imported.returncode == 0, imported.stderr[-2000:]
    first = stage_study(root)
    assert first["commits"] > len(first["repos"]) > 10
    for fresh_machine in (False, True):
        if fresh_machine:
            (root / ".release" / "state.json").unlink()
        again = stage_study(root)
        requests = {k: n for k, n in again["requests"].items() if k != "GET /agent-harnesses"}
        assert again["commits"] == 0 and all(r["status"] == "skipped" for r in again["repos"])
        # a listing per repo type (models, the dataset, the Space), listing and reading the collection
        assert requests == {"GET listing": 3, "GET /collections": 2}, requests
