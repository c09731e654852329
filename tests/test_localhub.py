"""The local Hub server driven by the real huggingface_hub client over HTTP (HF_ENDPOINT -> conftest.HUB_PORT)."""

from __future__ import annotations

import base64
import os
import uuid
from pathlib import Path

import httpx
import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    HfFileSystem,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from localhub import DEFAULT_USER


@pytest.fixture
def api(local_hub) -> HfApi:
    return HfApi(token=local_hub.token)


def new_repo(api: HfApi, repo_type: str = "model", **kwargs) -> str:
    repo_id = f"{DEFAULT_USER}/t-{uuid.uuid4().hex[:10]}"
    api.create_repo(repo_id, repo_type=repo_type, **kwargs)
    return repo_id


def preupload_mode(local_hub, repo_id: str, path: str, data: bytes) -> dict:
    response = httpx.post(
        f"{local_hub.endpoint}/api/models/{repo_id}/preupload/main",
        headers={"authorization": f"Bearer {local_hub.token}"},
        json={"files": [{"path": path, "size": len(data), "sample": base64.b64encode(data[:512]).decode()}]},
    )
    response.raise_for_status()
    return response.json()["files"][0]


def test_create_repo_of_each_type_with_exist_ok_semantics(api: HfApi) -> None:
    for repo_type, extra in (("model", {}), ("dataset", {}), ("space", {"space_sdk": "gradio"})):
        repo_id = new_repo(api, repo_type, **extra)
        assert api.repo_exists(repo_id, repo_type=repo_type)
        with pytest.raises(HfHubHTTPError) as err:
            api.create_repo(repo_id, repo_type=repo_type, **extra)
        assert err.value.response.status_code == 409
        url = api.create_repo(repo_id, repo_type=repo_type, exist_ok=True, **extra)
        assert url.repo_id == repo_id and url.repo_type == repo_type
        assert api.list_repo_files(repo_id, repo_type=repo_type) == [".gitattributes"]
    api.delete_repo(repo_id, repo_type="space")
    assert not api.repo_exists(repo_id, repo_type="space")
    with pytest.raises(RepositoryNotFoundError):
        api.delete_repo(repo_id, repo_type="space")


def test_invalid_repo_name_is_a_clear_400(api: HfApi, local_hub) -> None:
    response = httpx.post(
        f"{local_hub.endpoint}/api/repos/create",
        json={"name": "bad name!", "type": "model"},
        headers={"authorization": f"Bearer {local_hub.token}"},
    )
    assert response.status_code == 400 and "Invalid repo id" in response.json()["error"]


def test_regular_and_lfs_uploads_round_trip_with_hub_headers(api: HfApi, local_hub, tmp_path: Path) -> None:
    repo_id = new_repo(api)
    small, weights, big = b'{"hidden_size": 8}', os.urandom(4096), os.urandom(11 * 1024 * 1024)
    assert preupload_mode(local_hub, repo_id, "config.json", small)["uploadMode"] == "regular"
    assert preupload_mode(local_hub, repo_id, "model.safetensors", weights)["uploadMode"] == "lfs"
    assert preupload_mode(local_hub, repo_id, "big.txt", big)["uploadMode"] == "lfs"  # >= 10 MB
    (tmp_path / "big.txt").write_bytes(big)
    api.upload_file(path_or_fileobj=small, path_in_repo="config.json", repo_id=repo_id)
    api.upload_file(path_or_fileobj=weights, path_in_repo="model.safetensors", repo_id=repo_id)
    info = api.upload_file(path_or_fileobj=tmp_path / "big.txt", path_in_repo="data/big.txt", repo_id=repo_id)

    tree = {f.path: f for f in api.list_repo_tree(repo_id, recursive=True)}
    assert tree["config.json"].lfs is None and tree["model.safetensors"].lfs.size == 4096
    assert tree["data/big.txt"].lfs.size == len(big) and "data" in tree
    # The second identical upload is recognised by its oid (preupload) and makes no commit.
    again = api.upload_file(path_or_fileobj=weights, path_in_repo="model.safetensors", repo_id=repo_id)
    assert again.oid == info.oid
    for name, data in (("config.json", small), ("model.safetensors", weights), ("data/big.txt", big)):
        assert Path(hf_hub_download(repo_id, name)).read_bytes() == data
    meta = get_hf_file_metadata(hf_hub_url(repo_id, "model.safetensors"))
    assert meta.commit_hash == info.oid and meta.size == 4096
    assert meta.etag == tree["model.safetensors"].lfs.sha256
    assert get_hf_file_metadata(hf_hub_url(repo_id, "config.json")).etag == tree["config.json"].blob_id


def test_lfs_upload_with_wrong_content_is_refused(api: HfApi, local_hub) -> None:
    repo_id = new_repo(api)
    oid = "ab" * 32
    batch = httpx.post(
        f"{local_hub.endpoint}/{repo_id}.git/info/lfs/objects/batch",
        headers={"authorization": f"Bearer {local_hub.token}"},
        json={"operation": "upload", "objects": [{"oid": oid, "size": 3}]},
    ).json()
    href = batch["objects"][0]["actions"]["upload"]["href"]
    response = httpx.put(href, content=b"abc")
    assert response.status_code == 400 and "hashes to sha256" in response.json()["error"]
    commit = "\n".join(
        [
            '{"key": "header", "value": {"summary": "x"}}',
            f'{{"key": "lfsFile", "value": {{"path": "w.bin", "algo": "sha256", "oid": "{oid}"}}}}',
        ]
    )
    response = httpx.post(
        f"{local_hub.endpoint}/api/models/{repo_id}/commit/main",
        content=commit,
        headers={"authorization": f"Bearer {local_hub.token}"},
    )
    assert response.status_code == 400 and "never uploaded" in response.json()["error"]


def test_stale_parent_commit_is_rejected_with_412(api: HfApi) -> None:
    repo_id = new_repo(api)
    parent = api.repo_info(repo_id).sha
    api.upload_file(path_or_fileobj=b"1", path_in_repo="a.txt", repo_id=repo_id, parent_commit=parent)
    with pytest.raises(HfHubHTTPError) as err:
        api.create_commit(
            repo_id, [CommitOperationAdd("b.txt", b"2")], commit_message="stale", parent_commit=parent
        )
    assert err.value.response.status_code == 412
    assert api.list_repo_files(repo_id) == [".gitattributes", "a.txt"]


def test_branches_tags_and_revisions(api: HfApi) -> None:
    repo_id = new_repo(api)
    api.upload_file(path_or_fileobj=b"main-1", path_in_repo="w.txt", repo_id=repo_id)
    api.create_branch(repo_id, branch="epoch-01")
    api.create_branch(repo_id, branch="epoch-01", exist_ok=True)
    api.upload_file(path_or_fileobj=b"epoch-1", path_in_repo="w.txt", repo_id=repo_id, revision="epoch-01")
    api.upload_file(
        path_or_fileobj=b"x", path_in_repo="only-branch.txt", repo_id=repo_id, revision="epoch-01"
    )
    api.create_tag(repo_id, tag="v1", revision="epoch-01")
    refs = api.list_repo_refs(repo_id)
    assert {b.name for b in refs.branches} == {"main", "epoch-01"} and [t.name for t in refs.tags] == ["v1"]
    assert "only-branch.txt" not in api.list_repo_files(repo_id)
    assert "only-branch.txt" in api.list_repo_files(repo_id, revision="epoch-01")
    assert Path(hf_hub_download(repo_id, "w.txt", revision="epoch-01")).read_bytes() == b"epoch-1"
    assert Path(hf_hub_download(repo_id, "w.txt", revision="v1")).read_bytes() == b"epoch-1"
    assert Path(hf_hub_download(repo_id, "w.txt")).read_bytes() == b"main-1"
    commits = api.list_repo_commits(repo_id, revision="epoch-01")
    assert [c.title for c in commits][-1] == "initial commit" and len(commits) == 4
    api.delete_branch(repo_id, branch="epoch-01")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo_id, "w.txt", revision="epoch-01", force_download=True)
    api.create_branch(repo_id, branch="exp/lr-1e-3", revision="v1")  # quoted as one path segment
    assert Path(hf_hub_download(repo_id, "w.txt", revision="exp/lr-1e-3")).read_bytes() == b"epoch-1"
    # A commit sha is a revision too, and the tag still points at the deleted branch's commit.
    assert api.list_repo_files(repo_id, revision=refs.tags[0].target_commit)[-1] == "w.txt"


def test_snapshot_download_is_served_from_cache_until_a_new_commit(
    api: HfApi, clean_faults, tmp_path
) -> None:
    repo_id = new_repo(api)
    api.upload_folder(folder_path=_folder(tmp_path, {"a.txt": "1", "sub/b.txt": "2"}), repo_id=repo_id)
    first = Path(snapshot_download(repo_id))
    assert (first / "sub" / "b.txt").read_text() == "2"
    before = clean_faults.fault_counts()["requests"]
    assert Path(snapshot_download(repo_id)) == first
    assert clean_faults.fault_counts()["requests"] - before == 1  # only the "which commit is main?" call
    api.upload_file(path_or_fileobj=b"3", path_in_repo="a.txt", repo_id=repo_id)
    second = Path(snapshot_download(repo_id))
    assert second != first and (second / "a.txt").read_text() == "3"
    assert second.name == api.repo_info(repo_id).sha


def test_missing_repo_revision_and_file_raise_the_clients_errors(api: HfApi) -> None:
    repo_id = new_repo(api)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(f"{DEFAULT_USER}/does-not-exist", "x.txt")
    with pytest.raises(RevisionNotFoundError):
        api.model_info(repo_id, revision="nope")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo_id, "missing.txt")
    assert api.file_exists(repo_id, ".gitattributes") and not api.file_exists(repo_id, "missing.txt")
    assert not api.repo_exists(f"{DEFAULT_USER}/does-not-exist")


def test_repo_info_exposes_sha_siblings_and_card_data(api: HfApi) -> None:
    repo_id = new_repo(api)
    card = "---\nlicense: apache-2.0\nlibrary_name: transformers\ntags: [sft]\n---\n# Model\n"
    info = api.upload_file(path_or_fileobj=card.encode(), path_in_repo="README.md", repo_id=repo_id)
    model = api.model_info(repo_id, files_metadata=True)
    assert model.sha == info.oid and model.card_data.license == "apache-2.0"
    assert model.library_name == "transformers" and "license:apache-2.0" in model.tags
    assert {s.rfilename: s.size for s in model.siblings}["README.md"] == len(card)
    dataset_id = new_repo(api, "dataset")
    assert (
        api.dataset_info(dataset_id).sha
        == api.list_repo_commits(dataset_id, repo_type="dataset")[0].commit_id
    )


def test_invalid_readme_yaml_is_refused_before_upload(api: HfApi) -> None:
    repo_id = new_repo(api)
    with pytest.raises(ValueError, match="Invalid metadata"):
        api.upload_file(
            path_or_fileobj=b"---\nlicense: [unclosed\n---\n", path_in_repo="README.md", repo_id=repo_id
        )


def test_deletions_and_commit_listing(api: HfApi, tmp_path: Path) -> None:
    repo_id = new_repo(api)
    api.upload_folder(
        folder_path=_folder(tmp_path, {"keep.txt": "k", "old/a.txt": "a", "old/b.txt": "b"}), repo_id=repo_id
    )
    api.create_commit(repo_id, [CommitOperationDelete("old/")], commit_message="drop old")
    assert api.list_repo_files(repo_id) == [".gitattributes", "keep.txt"]
    with pytest.raises(EntryNotFoundError):
        api.delete_file("absent.txt", repo_id=repo_id)
    assert [c.title for c in api.list_repo_commits(repo_id)][:1] == ["drop old"]


def test_tree_pagination_expand_and_range_requests(api: HfApi, local_hub, tmp_path: Path) -> None:
    repo_id = new_repo(api)
    api.upload_folder(
        folder_path=_folder(tmp_path, {f"f{i}.txt": f"content {i}" for i in range(5)}), repo_id=repo_id
    )
    url, seen = f"{local_hub.endpoint}/api/models/{repo_id}/tree/main?limit=2", []
    while url:
        response = httpx.get(url)
        seen += [item["path"] for item in response.json()]
        url = response.links.get("next", {}).get("url")
    assert seen == [".gitattributes"] + [f"f{i}.txt" for i in range(5)]
    expanded = list(api.list_repo_tree(repo_id, expand=True))
    assert all(f.last_commit is not None for f in expanded)
    assert (
        expanded[0].last_commit.title == "initial commit"
        and expanded[1].last_commit.title != "initial commit"
    )
    response = httpx.get(hf_hub_url(repo_id, "f3.txt"), headers={"Range": "bytes=2-5"})
    assert response.status_code == 206 and response.content == b"nten"


def test_hf_file_system_reads_through_paths_info_and_tree(api: HfApi, tmp_path: Path) -> None:
    repo_id = new_repo(api, "dataset")
    api.upload_folder(
        folder_path=_folder(tmp_path, {"data/x.csv": "a,b\n1,2\n"}), repo_id=repo_id, repo_type="dataset"
    )
    fs = HfFileSystem()
    assert fs.ls(f"datasets/{repo_id}/data", detail=False) == [f"datasets/{repo_id}/data/x.csv"]
    assert fs.info(f"datasets/{repo_id}/data/x.csv")["size"] == 8
    assert fs.read_text(f"datasets/{repo_id}/data/x.csv") == "a,b\n1,2\n"
    assert fs.glob(f"datasets/{repo_id}/**/*.csv") == [f"datasets/{repo_id}/data/x.csv"]


def test_collections(api: HfApi) -> None:
    repo_id = new_repo(api)
    title = f"release {uuid.uuid4().hex[:6]}"
    collection = api.create_collection(title, description="all models")
    assert api.create_collection(title, exists_ok=True).slug == collection.slug
    api.add_collection_item(collection.slug, item_id=repo_id, item_type="model", note="final")
    api.add_collection_item(collection.slug, item_id=repo_id, item_type="model", exists_ok=True)
    fetched = api.get_collection(collection.slug)
    assert [(i.item_id, i.item_type, i.note) for i in fetched.items] == [(repo_id, "model", "final")]
    assert collection.slug in {c.slug for c in api.list_collections(owner=DEFAULT_USER)}
    api.delete_collection(collection.slug)
    assert collection.slug not in {c.slug for c in api.list_collections(owner=DEFAULT_USER)}


def test_writes_need_a_valid_token_reads_of_public_repos_do_not(api: HfApi, local_hub) -> None:
    repo_id = new_repo(api)
    anonymous = HfApi(token=False)
    for attempt in (
        lambda: anonymous.create_repo(f"{DEFAULT_USER}/anon-{uuid.uuid4().hex[:6]}"),
        lambda: anonymous.upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id=repo_id),
        lambda: HfApi(token="hf_wrong").upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id=repo_id),
    ):
        with pytest.raises(HfHubHTTPError) as err:
            attempt()
        assert err.value.response.status_code == 401
    assert anonymous.list_repo_files(repo_id) == [".gitattributes"]
    private_id = new_repo(api, private=True)
    with pytest.raises(RepositoryNotFoundError):
        anonymous.model_info(private_id)
    assert api.model_info(private_id).private


def _folder(root: Path, files: dict[str, str]) -> Path:
    folder = root / uuid.uuid4().hex[:6]
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def test_listing_expands_head_and_card_of_many_repos_in_linked_pages(api: HfApi, local_hub) -> None:
    """What the publisher reads instead of one refs request per repo: every repo's main head and card
    metadata, in pages linked by ``Link: rel="next"`` that keep every ``expand`` value."""
    prefix = f"lister-{uuid.uuid4().hex[:6]}"
    repos = [f"{DEFAULT_USER}/{prefix}-{i}" for i in range(3)]
    for i, repo_id in enumerate(repos):
        api.create_repo(repo_id, private=i == 0)
        card = f"---\nkey: v{i}\n---\n".encode()
        api.upload_file(path_or_fileobj=card, path_in_repo="README.md", repo_id=repo_id)
    heads = {repo_id: api.model_info(repo_id).sha for repo_id in repos}

    listed = list(api.list_models(author=DEFAULT_USER, search=prefix, expand=["sha", "cardData"]))
    assert {m.id: m.sha for m in listed} == heads  # the private repo too, for its owner
    assert {m.id: m.card_data.get("key") for m in listed} == {r: f"v{i}" for i, r in enumerate(repos)}
    anonymous = {m.id for m in HfApi(token=False).list_models(author=DEFAULT_USER, search=prefix)}
    assert anonymous == set(repos[1:])

    query = f"author={DEFAULT_USER}&search={prefix}&limit=2&expand=sha&expand[]=private"
    url, seen = f"{local_hub.endpoint}/api/models?{query}", []
    while url:
        response = httpx.get(url, headers={"authorization": f"Bearer {local_hub.token}"})
        assert response.status_code == 200, response.text
        seen += response.json()
        url = response.links.get("next", {}).get("url")
    assert [(e["id"], e["sha"], e["private"]) for e in seen] == [(r, heads[r], r == repos[0]) for r in repos]
    assert all(set(e) == {"_id", "id", "modelId", "sha", "private"} for e in seen)
    bad = httpx.get(f"{local_hub.endpoint}/api/models?expand=shaa")
    assert bad.status_code == 400 and "shaa" in bad.json()["error"]
