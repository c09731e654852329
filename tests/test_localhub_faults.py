"""Fault injection, concurrency, persistence and the CLI of the local Hub."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError

from localhub import DEFAULT_ADMIN_TOKEN, DEFAULT_USER, free_port, serve_in_background
from localhub.faults import FaultConfig, FaultConfigError
from tests.localhub_support import wait_until_healthy


@pytest.fixture
def api(local_hub) -> HfApi:
    return HfApi(token=local_hub.token)


def _repo(api: HfApi) -> str:
    repo_id = f"{DEFAULT_USER}/faults-{uuid.uuid4().hex[:10]}"
    api.create_repo(repo_id)
    return repo_id


def test_status_faults_carry_retry_after_and_are_counted(clean_faults) -> None:
    clean_faults.set_faults(
        {"rules": [{"kind": "status", "status": 429, "retry_after": 7, "path": "^/api/models"}]}
    )
    response = httpx.get(f"{clean_faults.endpoint}/api/models")
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"
    assert httpx.get(f"{clean_faults.endpoint}/health").status_code == 200  # health is never faulted
    for status in (500, 503):
        clean_faults.set_faults({"rules": [{"kind": "status", "status": status, "methods": ["POST"]}]})
        assert httpx.get(f"{clean_faults.endpoint}/api/models").status_code == 200  # GET not in scope
        assert httpx.post(f"{clean_faults.endpoint}/api/validate-yaml", json={}).status_code == status
        assert clean_faults.fault_counts()["by_kind"] == {str(status): 1}


def test_dropped_connections_and_slow_responses(clean_faults) -> None:
    clean_faults.set_faults({"rules": [{"kind": "drop", "path": "^/api/models$"}]})
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{clean_faults.endpoint}/api/models")
    clean_faults.set_faults({"rules": [{"kind": "delay", "delay_s": 0.4}]})
    start = time.monotonic()
    assert httpx.get(f"{clean_faults.endpoint}/api/models").status_code == 200
    assert time.monotonic() - start >= 0.4
    assert clean_faults.fault_counts()["by_kind"] == {"delay": 1}


def test_drop_after_applies_the_commit_but_loses_the_answer(api: HfApi, clean_faults) -> None:
    repo_id = _repo(api)
    clean_faults.set_faults(
        {"rules": [{"kind": "drop", "when": "after", "path": "/commit/", "max_count": 1}]}
    )
    with pytest.raises(Exception):  # noqa: B017 - whatever the transport error, the client must not see success
        api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id)
    assert api.list_repo_files(repo_id) == [".gitattributes", "x.txt"]
    assert clean_faults.fault_counts()["by_kind"] == {"drop_after": 1}


def test_faults_are_reproducible_with_a_seed(clean_faults) -> None:
    def outcomes() -> list[int]:
        clean_faults.set_faults({"seed": 3, "rules": [{"kind": "status", "status": 503, "probability": 0.5}]})
        with httpx.Client(base_url=clean_faults.endpoint) as client:
            return [client.get("/api/models").status_code for _ in range(20)]

    first = outcomes()
    assert first == outcomes() and 0 < first.count(503) < 20


def test_huggingface_hub_retries_through_moderate_429s(api: HfApi, clean_faults) -> None:
    repo_id = _repo(api)
    # The client's own backoff covers preupload, the LFS batch API and LFS transfers (not /commit:
    # retrying that is the publisher's job). Retry-After 0 keeps each wait at the client's 1 s floor.
    clean_faults.set_faults(
        {
            "seed": 1,
            "rules": [
                {
                    "kind": "status",
                    "status": 429,
                    "retry_after": 0,
                    "probability": 0.3,
                    "path": "preupload|info/lfs|/_lfs/",
                }
            ],
        }
    )
    data = os.urandom(2048)
    api.upload_file(path_or_fileobj=data, path_in_repo="w.safetensors", repo_id=repo_id)
    api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=repo_id)
    counts = clean_faults.fault_counts()
    assert counts["by_kind"].get("429", 0) >= 1
    clean_faults.reset_faults()
    assert Path(hf_hub_download(repo_id, "w.safetensors")).read_bytes() == data


def test_admin_route_needs_the_admin_token_and_a_valid_config(local_hub) -> None:
    url = f"{local_hub.endpoint}/_admin/faults"
    assert httpx.put(url, json={}, headers={"authorization": f"Bearer {local_hub.token}"}).status_code == 401
    bad = httpx.put(
        url, json={"rules": [{"kind": "explode"}]}, headers={"authorization": f"Bearer {DEFAULT_ADMIN_TOKEN}"}
    )
    assert bad.status_code == 400 and "explode" in bad.json()["error"]
    with pytest.raises(FaultConfigError, match="probability"):
        FaultConfig.from_obj({"rules": [{"kind": "drop", "probability": 2}]})


def test_concurrent_commits_land_once_each_in_a_linear_history(api: HfApi) -> None:
    repo_id = _repo(api)
    errors: list[BaseException] = []

    def commit(i: int) -> None:
        try:
            api.upload_file(path_or_fileobj=f"{i}".encode(), path_in_repo=f"f{i}.txt", repo_id=repo_id)
        except BaseException as err:  # collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=commit, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    commits = api.list_repo_commits(repo_id)
    assert len(commits) == 9 and len({c.commit_id for c in commits}) == 9
    assert sorted(api.list_repo_files(repo_id)) == sorted(
        [".gitattributes"] + [f"f{i}.txt" for i in range(8)]
    )


def test_concurrent_commits_on_one_parent_let_exactly_one_win(api: HfApi) -> None:
    repo_id = _repo(api)
    parent = api.repo_info(repo_id).sha
    statuses: list[int] = []

    def commit(i: int) -> None:
        try:
            api.create_commit(
                repo_id, [CommitOperationAdd(f"f{i}.txt", b"x")], commit_message=f"c{i}", parent_commit=parent
            )
            statuses.append(200)
        except HfHubHTTPError as err:
            statuses.append(err.response.status_code)

    threads = [threading.Thread(target=commit, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [412] * 5
    assert len(api.list_repo_commits(repo_id)) == 2


def test_data_survives_a_restart(tmp_path: Path) -> None:
    root = tmp_path / "hub"
    with serve_in_background(root) as hub:
        api = HfApi(endpoint=hub.endpoint, token=hub.token)
        api.create_repo("me/kept", repo_type="dataset")
        api.upload_file(
            path_or_fileobj=b"persist", path_in_repo="a.bin", repo_id="me/kept", repo_type="dataset"
        )
        api.create_branch("me/kept", branch="epoch-01", repo_type="dataset")
        sha = api.dataset_info("me/kept").sha
    with serve_in_background(root) as hub:
        api = HfApi(endpoint=hub.endpoint, token=hub.token)
        assert api.dataset_info("me/kept").sha == sha
        assert {b.name for b in api.list_repo_refs("me/kept", repo_type="dataset").branches} == {
            "main",
            "epoch-01",
        }
        path = hf_hub_download(
            "me/kept", "a.bin", repo_type="dataset", endpoint=hub.endpoint, cache_dir=tmp_path / "cache"
        )
        assert Path(path).read_bytes() == b"persist"


def test_cli_serves_with_a_faults_file(tmp_path: Path) -> None:
    (tmp_path / "faults.yaml").write_text(
        "seed: 2\nrules:\n  - kind: status\n    status: 503\n    path: ^/api/models$\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "release",
            "localhub",
            "--root",
            str(tmp_path / "hub"),
            "--port",
            str(port),
            "--faults",
            str(tmp_path / "faults.yaml"),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        wait_until_healthy(endpoint)
        assert httpx.get(f"{endpoint}/api/models").status_code == 503
        assert httpx.get(f"{endpoint}/api/datasets").status_code == 200
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    assert f"HF_ENDPOINT={endpoint}" in output and "HF_HUB_DISABLE_XET=1" in output
