"""Team mode of the local Hub, driven by the real huggingface_hub client as alice, bob and anonymously:
namespaces, read-only tokens, organisations, private repos and collections, LFS object scoping."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from tests.localhub_support import ALICE, ALICE_READ, BOB, client, snapshot, team_hub, unique

WEIGHTS = os.urandom(2048)  # binary: uploaded through LFS


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    with team_hub(tmp_path_factory.mktemp("team-hub")) as handle:
        yield handle


@pytest.fixture(scope="module")
def repos(hub) -> dict[str, str]:
    """alice's public and private models (with an LFS file, a branch and a tag) and collections."""
    alice = client(hub, ALICE)
    public, private = f"alice/{unique('pub')}", f"alice/{unique('priv')}"
    for repo_id, is_private in ((public, False), (private, True)):
        alice.create_repo(repo_id, private=is_private)
        alice.upload_file(path_or_fileobj=WEIGHTS, path_in_repo="model.bin", repo_id=repo_id)
        alice.upload_file(path_or_fileobj=b"# card\n", path_in_repo="README.md", repo_id=repo_id)
        alice.create_branch(repo_id, branch="epoch-01")
        alice.create_tag(repo_id, tag="v1")
    public_coll = alice.create_collection(unique("public collection"))
    private_coll = alice.create_collection(unique("private collection"), private=True)
    return {
        "public": public,
        "private": private,
        "public_coll": public_coll.slug,
        "private_coll": private_coll.slug,
    }


def http_status(call: Callable[[], object]) -> tuple[int, str]:
    with pytest.raises(HfHubHTTPError) as err:
        call()
    return err.value.response.status_code, str(err.value)


def write_calls(api: HfApi, repo_id: str, coll: str) -> dict[str, Callable[[], object]]:
    """Every write the client makes, aimed at alice's repo ``repo_id`` and collection ``coll``."""
    return {
        "upload_file": lambda: api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id),
        "upload_lfs": lambda: api.upload_file(
            path_or_fileobj=os.urandom(64) + b"\0", path_in_repo="w.bin", repo_id=repo_id
        ),
        "delete_file": lambda: api.delete_file("README.md", repo_id=repo_id),
        "create_branch": lambda: api.create_branch(repo_id, branch=unique("b")),
        "delete_branch": lambda: api.delete_branch(repo_id, branch="epoch-01"),
        "create_tag": lambda: api.create_tag(repo_id, tag=unique("t")),
        "delete_tag": lambda: api.delete_tag(repo_id, tag="v1"),
        "update_settings": lambda: api.update_repo_settings(repo_id, private=False),
        "move_repo": lambda: api.move_repo(repo_id, f"{repo_id}-moved"),
        "delete_repo": lambda: api.delete_repo(repo_id),
        "add_collection_item": lambda: api.add_collection_item(coll, item_id=repo_id, item_type="model"),
        "delete_collection": lambda: api.delete_collection(coll),
    }


def read_calls(api: HfApi, cache: Path) -> dict[str, Callable[[str], object]]:
    """Every read the client makes, of a repo id."""
    return {
        "model_info": lambda r: api.model_info(r),
        "revision_info": lambda r: api.model_info(r, revision="epoch-01"),
        "list_repo_refs": lambda r: api.list_repo_refs(r),
        "list_repo_commits": lambda r: api.list_repo_commits(r),
        "list_repo_tree": lambda r: list(api.list_repo_tree(r)),
        "get_paths_info": lambda r: api.get_paths_info(r, ["README.md"]),
        "hf_hub_download": lambda r: api.hf_hub_download(r, "README.md", cache_dir=cache),
    }


def test_whoami_names_the_user_its_organisations_and_the_token_role(hub) -> None:
    me = client(hub, ALICE).whoami()
    assert me["name"] == "alice" and [o["name"] for o in me["orgs"]] == ["lab"]
    assert me["auth"]["accessToken"]["role"] == "write"
    assert client(hub, ALICE_READ).whoami()["auth"]["accessToken"]["role"] == "read"
    assert client(hub, BOB).whoami()["orgs"] == []
    assert httpx.get(f"{hub.endpoint}/api/whoami-v2").status_code == 401
    assert http_status(lambda: client(hub, "hf_not_a_token_of_this_hub").whoami())[0] == 401


def test_each_user_creates_repos_in_its_namespace_and_its_organisations_only(hub) -> None:
    alice, bob = client(hub, ALICE), client(hub, BOB)
    assert alice.create_repo(f"lab/{unique()}").repo_id.startswith("lab/")
    assert bob.create_repo(unique()).repo_id.startswith("bob/")  # no namespace: the token's user
    for target in ("alice", "lab", "someone-else"):
        status, message = http_status(lambda target=target: bob.create_repo(f"{target}/{unique()}"))
        assert status == 403 and f"'{target}'" in message, message
    assert http_status(lambda: client(hub, None).create_repo(f"alice/{unique()}"))[0] == 401
    status, message = http_status(lambda: client(hub, ALICE_READ).create_repo(f"alice/{unique()}"))
    assert status == 403 and "read-only" in message
    assert http_status(lambda: bob.create_collection("x", namespace="lab"))[0] == 403


@pytest.mark.parametrize("kind", ["public", "private"])
def test_every_write_to_another_users_repo_is_refused_and_changes_nothing(hub, repos, kind: str) -> None:
    repo_id, coll = repos[kind], repos["public_coll"]
    before = snapshot(hub.root / "repos"), snapshot(hub.root / "collections")
    anonymous, bob, reader = client(hub, None), client(hub, BOB), client(hub, ALICE_READ)
    for name, call in write_calls(bob, repo_id, coll).items():
        status, message = http_status(call)
        if kind == "public" or "collection" in name:
            assert status == 403 and "'alice'" in message, (name, status, message)
        else:  # a private repo of someone else answers like a missing one
            assert status == 404, (name, status, message)
    for name, call in write_calls(anonymous, repo_id, coll).items():
        assert http_status(call)[0] == 401, name
    for name, call in write_calls(reader, repo_id, coll).items():
        status, message = http_status(call)
        assert status == 403 and "read-only" in message, (name, status, message)
    assert (snapshot(hub.root / "repos"), snapshot(hub.root / "collections")) == before


def test_the_owner_and_organisation_members_may_write(hub) -> None:
    alice = client(hub, ALICE)
    repo_id = alice.create_repo(f"lab/{unique()}").repo_id
    alice.upload_file(path_or_fileobj=b"hello", path_in_repo="a.txt", repo_id=repo_id)
    alice.create_branch(repo_id, branch="dev")
    alice.update_repo_settings(repo_id, private=True)
    moved = f"alice/{unique()}"
    alice.move_repo(repo_id, moved)
    assert alice.list_repo_files(moved) == [".gitattributes", "a.txt"] and alice.model_info(moved).private
    alice.delete_repo(moved)
    assert not alice.repo_exists(moved)


def test_a_private_repo_is_invisible_to_others_and_answers_like_a_missing_one(hub, repos) -> None:
    private, missing = repos["private"], f"alice/{unique('missing')}"
    for token in (None, BOB):
        api = client(hub, token)
        reads = read_calls(api, hub.root.parent / "cache")
        for name, read in reads.items():
            answers = []
            for repo_id in (private, missing):
                with pytest.raises(RepositoryNotFoundError) as err:
                    read(repo_id)
                response = err.value.response
                message = response.headers.get("X-Error-Message", "")
                answers.append((response.status_code, message.replace(repo_id, "<repo>")))
            assert answers[0] == answers[1], (name, answers)
        assert not api.repo_exists(private)
        assert private not in {m.id for m in api.list_models(author="alice")}
        assert repos["public"] in {m.id for m in api.list_models(author="alice")}
        page = httpx.get(f"{hub.endpoint}/", headers=api._build_hf_headers() if token else {}).text
        assert private.split("/")[1] not in page and repos["public"].split("/")[1] in page
        assert httpx.get(f"{hub.endpoint}/{private}").status_code == 404
    for token in (ALICE, ALICE_READ):
        api = client(hub, token)
        assert api.model_info(private).private
        assert private in {m.id for m in api.list_models(author="alice")}
        assert (
            Path(api.hf_hub_download(private, "model.bin", cache_dir=hub.root.parent / token)).read_bytes()
            == WEIGHTS
        )


def test_private_collections_are_listed_and_readable_by_their_owner_only(hub, repos) -> None:
    private, public = repos["private_coll"], repos["public_coll"]
    for token in (None, BOB):
        api = client(hub, token)
        slugs = {c.slug for c in api.list_collections(owner="alice", limit=100)}
        assert public in slugs and private not in slugs
        with pytest.raises(HfHubHTTPError) as err:
            api.get_collection(private)
        assert err.value.response.status_code == 404
    assert private in {c.slug for c in client(hub, ALICE_READ).list_collections(owner="alice", limit=100)}
    assert client(hub, ALICE).get_collection(private).private


def lfs_batch(hub, repo_id: str, token: str, operation: str, oid: str, size: int) -> dict:
    response = httpx.post(
        f"{hub.endpoint}/{repo_id}.git/info/lfs/objects/batch",
        headers={"authorization": f"Bearer {token}"},
        json={"operation": operation, "objects": [{"oid": oid, "size": size}], "transfers": ["basic"]},
    )
    assert response.status_code == 200, response.text
    return response.json()["objects"][0]


def test_lfs_objects_are_scoped_to_the_repos_that_reference_them(hub, repos) -> None:
    import hashlib

    oid, size = hashlib.sha256(WEIGHTS).hexdigest(), len(WEIGHTS)
    bob = client(hub, BOB)
    own = bob.create_repo(unique()).repo_id
    # Knowing the hash of alice's private weights gets bob no download action through his own repo.
    assert "download" not in lfs_batch(hub, own, BOB, "download", oid, size).get("actions", {})
    assert "download" in lfs_batch(hub, repos["private"], ALICE_READ, "download", oid, size)["actions"]
    # Nor may he commit a pointer to them: he must upload the content (prove he has it) first.
    ndjson = (
        b'{"key": "header", "value": {"summary": "steal"}}\n'
        + f'{{"key": "lfsFile", "value": {{"path": "w.bin", "algo": "sha256", "oid": "{oid}", "size": {size}}}}}'.encode()
    )
    response = httpx.post(
        f"{hub.endpoint}/api/models/{own}/commit/main",
        headers={"authorization": f"Bearer {BOB}", "content-type": "application/x-ndjson"},
        content=ndjson,
    )
    assert response.status_code == 400 and "never uploaded to this repo" in response.json()["error"]
    assert "upload" in lfs_batch(hub, own, BOB, "upload", oid, size)["actions"]
    # With the content, the real client uploads it and the commit works.
    bob.upload_file(path_or_fileobj=WEIGHTS, path_in_repo="w.bin", repo_id=own)
    assert "download" in lfs_batch(hub, own, BOB, "download", oid, size)["actions"]


def test_secret_blobs_and_commits_are_readable_by_the_server_user_only(hub, repos) -> None:
    assert stat.S_IMODE((hub.root / "secret").stat().st_mode) == 0o600
    for folder in ("blobs", "commits", "tmp", "repos", "collections"):
        assert stat.S_IMODE((hub.root / folder).stat().st_mode) == 0o700, folder
    blobs = [p for p in (hub.root / "blobs").rglob("*") if p.is_file()]
    assert blobs and all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in blobs)


LOAD_PRIVATE = """
import sys
from transformers import AutoConfig
repo, good, bad = sys.argv[1:4]
print("loaded", AutoConfig.from_pretrained(repo, revision="epoch-01", token=good).model_type)
try:
    AutoConfig.from_pretrained(repo, token=bad)
except OSError as err:
    print("refused", type(err).__name__)
"""


def test_from_pretrained_reads_a_private_repo_with_a_read_token_only(
    hub, tiny_llama: Path, tmp_path: Path
) -> None:
    """The use the team mode is for: weights on a lab's server, read through HF_ENDPOINT."""
    alice = client(hub, ALICE)
    repo_id = alice.create_repo(f"lab/{unique('weights')}", private=True).repo_id
    alice.upload_folder(folder_path=tiny_llama, repo_id=repo_id)
    alice.create_branch(repo_id, branch="epoch-01")
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(tmp_path)}
    env.pop("HF_TOKEN", None)
    result = subprocess.run(
        [sys.executable, "-c", LOAD_PRIVATE, repo_id, ALICE_READ, BOB],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "loaded llama" in result.stdout and "refused" in result.stdout, (
        result.stdout + result.stderr[-2000:]
    )
