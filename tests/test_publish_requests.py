"""How many requests publishing costs: on the real Hub the bound of a 1,000-repo release is the rate limit
(1,000 API requests per 5 minutes on a free account), so every request the publisher does not need is
time. The real huggingface_hub client against a private local Hub server; requests counted by kind."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from localhub import serve_in_background
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


def run(root: Path, endpoint: str, work_dir: Path) -> PublishOutcome:
    overrides = ["namespace=bench", "include.space=false", "include.results_dataset=false"]
    config = load_config("demo", [*overrides, "include.collection=false"])
    outcome = publish(load_inputs(root, config), config, Target(endpoint, TOKEN), work_dir=work_dir)
    assert not outcome.failed, [r.error for r in outcome.failed]
    return outcome


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

    noop = run(root, hub.endpoint, state)
    assert noop.commits == 0 and noop.stats.total == NOOP_REQUESTS, dict(noop.stats.counts)

    (state / "state.json").unlink()  # a fresh machine: the listing alone proves every repo unchanged
    stateless = run(root, hub.endpoint, state)
    assert stateless.commits == 0 and stateless.stats.total == NOOP_REQUESTS, dict(stateless.stats.counts)
    assert run(root, hub.endpoint, state).stats.total == NOOP_REQUESTS
