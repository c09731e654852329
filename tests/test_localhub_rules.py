"""The Hub's naming rules on the local Hub (repo names, namespaces, refs, paths), file names with `%`
decoded exactly once, a short sha as parent_commit, the file/folder clash, and move_repo; driven by the
real huggingface_hub client where it can send the request."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, HfFileSystem
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

from localhub import DEFAULT_USER


@pytest.fixture
def api(local_hub) -> HfApi:
    return HfApi(endpoint=local_hub.endpoint, token=local_hub.token)


@pytest.fixture
def repo_id(api: HfApi) -> str:
    repo_id = f"{DEFAULT_USER}/rules-{uuid.uuid4().hex[:8]}"
    api.create_repo(repo_id)
    return repo_id


def status_of(call) -> int:
    with pytest.raises(HfHubHTTPError) as err:
        call()
    return err.value.response.status_code


def create_raw(local_hub, name: str, organization: str | None = None) -> httpx.Response:
    # Raw HTTP: the client refuses some of these names itself, the server must refuse all of them.
    return httpx.post(
        f"{local_hub.endpoint}/api/repos/create",
        headers={"authorization": f"Bearer {local_hub.token}"},
        json={"name": name, "organization": organization, "type": "model"},
    )


@pytest.mark.parametrize(
    "name",
    ["a--b", "a..b", "-ab", "ab-", ".ab", "ab.", "a" * 97, "a b", "a\tb", "a\x00b", "ab.git", "é", "a/b", ""],
)
def test_invalid_repo_names_are_400(local_hub, name: str) -> None:
    response = create_raw(local_hub, name)
    assert response.status_code == 400 and "Invalid repo id" in response.json()["error"], response.text


@pytest.mark.parametrize("namespace", ["api", "datasets", "spaces", "a--b"])
def test_reserved_and_invalid_namespaces_are_400(local_hub, namespace: str) -> None:
    response = create_raw(local_hub, "fine", organization=namespace)
    assert response.status_code == 400, response.text


def test_names_at_the_limits_are_accepted(api: HfApi) -> None:
    for name in ("a", "A1.b_c-d", "x" * 96):
        repo_id = f"{DEFAULT_USER}-{uuid.uuid4().hex[:6]}/{name}"
        assert api.create_repo(repo_id).repo_id == repo_id
        assert api.repo_exists(repo_id)


@pytest.mark.parametrize(
    "ref", ["a..b", ".hidden", "x.lock", "a//b", "a/", "a b", "été", "a" * 201, "f" * 40]
)
def test_invalid_ref_names_are_400(api: HfApi, repo_id: str, ref: str) -> None:
    assert status_of(lambda: api.create_branch(repo_id, branch=ref)) == 400
    assert status_of(lambda: api.create_tag(repo_id, tag=ref)) == 400
    assert [b.name for b in api.list_repo_refs(repo_id).branches] == ["main"]


def test_slashed_and_dotted_refs_work_everywhere(api: HfApi, repo_id: str, tmp_path: Path) -> None:
    api.upload_file(path_or_fileobj=b"v1", path_in_repo="f.txt", repo_id=repo_id)
    for ref in ("release/v1.0", "epoch-01", "v1.0_rc"):
        api.create_branch(repo_id, branch=ref)
        path = api.hf_hub_download(repo_id, "f.txt", revision=ref, cache_dir=tmp_path)
        assert Path(path).read_bytes() == b"v1"
    api.upload_file(path_or_fileobj=b"v2", path_in_repo="f.txt", repo_id=repo_id, revision="release/v1.0")
    assert api.list_repo_commits(repo_id, revision="release/v1.0")[0].title.startswith("Upload")
    api.delete_branch(repo_id, branch="release/v1.0")
    assert "release/v1.0" not in {b.name for b in api.list_repo_refs(repo_id).branches}


PERCENT_NAMES = {
    "100%.txt": b"percent",
    "a%41.txt": b"not aA",
    "a%2Fb.txt": b"not a slash",
    "50% off/\u00e9t\u00e9 %25.txt": b"folder with percent",
    "\u6a21\u578b%20.txt": b"cjk",
    "a+b&c=d#e?.txt": b"reserved characters",
    "space name.txt": b"space",
}


def test_file_names_with_percent_round_trip_decoded_exactly_once(
    api: HfApi, repo_id: str, tmp_path: Path
) -> None:
    operations = [CommitOperationAdd(path, data) for path, data in PERCENT_NAMES.items()]
    api.create_commit(repo_id, operations, commit_message="percent names")
    assert set(api.list_repo_files(repo_id)) == {".gitattributes", *PERCENT_NAMES}
    for path, data in PERCENT_NAMES.items():
        assert Path(api.hf_hub_download(repo_id, path, cache_dir=tmp_path)).read_bytes() == data, path
    assert {p.path for p in api.get_paths_info(repo_id, list(PERCENT_NAMES))} == set(PERCENT_NAMES)
    folder = [f.path for f in api.list_repo_tree(repo_id, path_in_repo="50% off")]
    assert folder == ["50% off/\u00e9t\u00e9 %25.txt"]
    fs = HfFileSystem(endpoint=api.endpoint, token=api.token)
    assert fs.read_bytes(f"{repo_id}/100%.txt") == b"percent"
    api.delete_file("a%41.txt", repo_id=repo_id)
    assert "a%41.txt" not in api.list_repo_files(repo_id) and "100%.txt" in api.list_repo_files(repo_id)


@pytest.mark.parametrize("missing", ["\u6a21\u578b/\u6743\u91cd.bin", "emoji-\U0001f642.txt", "x" * 900])
def test_a_missing_path_with_any_characters_is_a_clean_404(
    api: HfApi, repo_id: str, missing: str, tmp_path: Path
) -> None:
    with pytest.raises(EntryNotFoundError) as err:
        api.hf_hub_download(repo_id, missing, cache_dir=tmp_path)
    message = err.value.response.headers["x-error-message"]
    message.encode("latin-1")
    assert len(message) <= 300 and "not found" in message


def test_a_short_sha_works_as_parent_commit(api: HfApi, repo_id: str) -> None:
    head = api.model_info(repo_id).sha
    for length in (40, 7, 5):
        info = api.upload_file(
            path_or_fileobj=f"{length}".encode(),
            path_in_repo=f"f{length}.txt",
            repo_id=repo_id,
            parent_commit=head[:length],
        )
        head = info.oid
    stale = api.list_repo_commits(repo_id)[1].commit_id
    assert (
        status_of(
            lambda: api.upload_file(
                path_or_fileobj=b"x", path_in_repo="x", repo_id=repo_id, parent_commit=stale[:7]
            )
        )
        == 412
    )
    upper = api.upload_file(
        path_or_fileobj=b"u", path_in_repo="u", repo_id=repo_id, parent_commit=head[:8].upper()
    )
    assert upper.oid != head


def test_a_file_and_a_folder_of_the_same_name_cannot_coexist(api: HfApi, repo_id: str) -> None:
    api.upload_file(path_or_fileobj=b"file", path_in_repo="a", repo_id=repo_id)
    api.upload_file(path_or_fileobj=b"nested", path_in_repo="d/x.txt", repo_id=repo_id)
    head = api.model_info(repo_id).sha
    assert (
        status_of(lambda: api.upload_file(path_or_fileobj=b"x", path_in_repo="a/b.txt", repo_id=repo_id))
        == 400
    )
    assert status_of(lambda: api.upload_file(path_or_fileobj=b"x", path_in_repo="d", repo_id=repo_id)) == 400
    both = [CommitOperationAdd("p", b"1"), CommitOperationAdd("p/q", b"2")]
    assert status_of(lambda: api.create_commit(repo_id, both, commit_message="both")) == 400
    assert api.model_info(repo_id).sha == head  # nothing of the refused commits landed
    replace = [CommitOperationDelete("a"), CommitOperationAdd("a/b.txt", b"now a folder")]
    api.create_commit(repo_id, replace, commit_message="file becomes folder")
    assert "a/b.txt" in api.list_repo_files(repo_id) and "a" not in api.list_repo_files(repo_id)


def test_move_repo_keeps_files_refs_and_history(api: HfApi, repo_id: str, tmp_path: Path) -> None:
    api.upload_file(path_or_fileobj=b"\0weights", path_in_repo="w.bin", repo_id=repo_id)
    api.create_branch(repo_id, branch="epoch-01")
    api.create_tag(repo_id, tag="v1")
    commits = [c.commit_id for c in api.list_repo_commits(repo_id)]
    target = f"{DEFAULT_USER}-moved/{uuid.uuid4().hex[:8]}"
    api.move_repo(repo_id, target)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(repo_id)
    refs = api.list_repo_refs(target)
    assert {b.name for b in refs.branches} == {"main", "epoch-01"} and [t.name for t in refs.tags] == ["v1"]
    assert [c.commit_id for c in api.list_repo_commits(target)] == commits
    assert (
        Path(api.hf_hub_download(target, "w.bin", revision="v1", cache_dir=tmp_path)).read_bytes()
        == b"\0weights"
    )
    other = api.create_repo(f"{DEFAULT_USER}/other-{uuid.uuid4().hex[:8]}").repo_id
    assert status_of(lambda: api.move_repo(target, other)) == 409
    assert status_of(lambda: api.move_repo(target, "api/x")) == 400
    dataset = api.create_repo(f"{DEFAULT_USER}/ds-{uuid.uuid4().hex[:8]}", repo_type="dataset").repo_id
    api.move_repo(dataset, f"{dataset}-renamed", repo_type="dataset")
    assert api.repo_exists(f"{dataset}-renamed", repo_type="dataset")
    # A name freed by a move can be used again.
    assert api.create_repo(repo_id).repo_id == repo_id
