"""The Space against the local Hub server: the results dataset built by the release stage is published
there with huggingface_hub, and the app loads it from the endpoint/repo/revision, refreshes without a
restart, and `python -m space` serves it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pandas as pd
import pytest
from space_support import free_port, released_import, write_results_folder

from space.config import SpaceConfig
from space.data import ResultsStore, load_results

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def results_folder(released_table: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    scores, quality = released_import(released_table)
    return write_results_folder(scores, quality, tmp_path_factory.mktemp("space-hub"))


@pytest.fixture
def published(local_hub, results_folder: Path) -> tuple[str, str]:
    """(repo id, first commit) of the results dataset uploaded to the local Hub."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=local_hub.endpoint, token=local_hub.token)
    repo_id = f"{api.whoami()['name']}/results-{uuid.uuid4().hex[:8]}"
    api.create_repo(repo_id, repo_type="dataset")
    commit = api.upload_folder(folder_path=results_folder, repo_id=repo_id, repo_type="dataset")
    return repo_id, commit.oid


def test_loads_the_published_dataset_by_revision_and_refreshes(local_hub, published, tmp_path: Path) -> None:
    from huggingface_hub import HfApi

    repo_id, first = published
    config = SpaceConfig(repo=repo_id, endpoint=local_hub.endpoint)
    store = ResultsStore(config)
    assert len(store.results.leaderboard) == 1027 and store.results.warnings == []
    assert store.results.source == f"{local_hub.endpoint}/datasets/{repo_id}"
    assert store.results.quality["n_rows"] == 1027
    # A new commit with only the OLMo rows: refresh sees it, the first revision still has everything.
    board = pd.read_parquet(_cached_board(config))
    smaller = tmp_path / "leaderboard.parquet"
    board[board["base_model_name"] == "OLMo-7B-hf"].to_parquet(smaller, index=False)
    HfApi(endpoint=local_hub.endpoint, token=local_hub.token).upload_file(
        path_or_fileobj=smaller, path_in_repo="data/leaderboard.parquet", repo_id=repo_id, repo_type="dataset"
    )
    assert len(store.reload().leaderboard) == 250
    pinned = load_results(SpaceConfig(repo=repo_id, endpoint=local_hub.endpoint, revision=first))
    assert len(pinned.leaderboard) == 1027 and pinned.source.endswith(f"@{first}")


def _cached_board(config: SpaceConfig) -> Path:
    from space.data import LEADERBOARD_FILE, download_results

    return download_results(config) / LEADERBOARD_FILE


def test_missing_repo_falls_back_to_the_local_copy(local_hub, results_folder: Path) -> None:
    config = SpaceConfig(
        repo="nobody/missing-results", endpoint=local_hub.endpoint, local_path=results_folder
    )
    loaded = load_results(config)
    assert len(loaded.leaderboard) == 1027
    assert "nobody/missing-results" in loaded.warnings[0]


def test_cli_serves_the_hub_dataset(local_hub, published) -> None:
    repo_id, _ = published
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("SPACE_RESULTS_PATH", None)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "space",
            "--results",
            repo_id,
            "--endpoint",
            local_hub.endpoint,
            "--port",
            str(port),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
            assert process.poll() is None, process.stdout.read()
        else:
            pytest.fail("python -m space did not serve the page within 120 s")
        config = httpx.get(f"http://127.0.0.1:{port}/config", timeout=10).json()
        assert "Massive SFT leaderboard" in str(config)
        assert f"{local_hub.endpoint}/datasets/{repo_id}" in str(config)  # the banner names the source
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert f"results: {local_hub.endpoint}/datasets/{repo_id} (1,027 models)" in output
