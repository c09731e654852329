"""Malformed input on every route of the local Hub: each answers a 4xx whose message names the problem,
never a 5xx, and a rejected request changes nothing on disk (the storage tree is compared before/after)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import httpx
import pytest
from huggingface_hub import HfApi

from localhub import serve_in_background
from tests.localhub_support import snapshot

TOKEN, ADMIN = "hf_malformed_0001", "hf_malformed_admin_0001"
REPO = "me/model"
API = f"/api/models/{REPO}"
MAX_BODY = 64 * 1024
HEAD = "0" * 40


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("malformed-hub")
    with serve_in_background(
        root, tokens={TOKEN: "me"}, admin_token=ADMIN, max_body_bytes=MAX_BODY
    ) as handle:
        api = HfApi(endpoint=handle.endpoint, token=TOKEN)
        api.create_repo(REPO)
        api.upload_file(path_or_fileobj=b"# card\n", path_in_repo="README.md", repo_id=REPO)
        api.upload_file(path_or_fileobj=b"\0" * 100, path_in_repo="folder/w.bin", repo_id=REPO)
        api.create_branch(REPO, branch="dev")
        api.create_tag(REPO, tag="v1")
        handle.collection = api.create_collection("malformed").slug
        with httpx.Client(timeout=30) as http:  # one client: a new one per request costs an SSL setup
            handle.http = http
            yield handle


def ndjson(*lines: Any) -> bytes:
    return b"\n".join(line if isinstance(line, bytes) else json.dumps(line).encode() for line in lines)


def header(**value: Any) -> dict[str, Any]:
    return {"key": "header", "value": {"summary": "s", **value}}


def op(key: str, **value: Any) -> dict[str, Any]:
    return {"key": key, "value": value}


def lfs_urls(hub, oid: str, size: int) -> dict[str, str]:
    response = hub.http.post(
        f"{hub.endpoint}/{REPO}.git/info/lfs/objects/batch",
        headers={"authorization": f"Bearer {TOKEN}"},
        json={"operation": "upload", "objects": [{"oid": oid, "size": size}]},
    )
    actions = response.json()["objects"][0]["actions"]
    return {kind: actions[kind]["href"].removeprefix(hub.endpoint) for kind in ("upload", "verify")}


NEW_OID = hashlib.sha256(b"never uploaded").hexdigest()
CJK = "模型/权重🙂.bin"
# (name, method, path, request keyword arguments, a word the error must contain)
CASES: list[tuple[str, str, str, dict[str, Any], str]] = [
    # repos
    ("create: not JSON", "POST", "/api/repos/create", {"content": b"{nope"}, "not valid JSON"),
    ("create: array", "POST", "/api/repos/create", {"json": ["x"]}, "JSON object"),
    ("create: name int", "POST", "/api/repos/create", {"json": {"name": 5}}, "'name'"),
    ("create: no name", "POST", "/api/repos/create", {"json": {}}, "'name'"),
    ("create: bad type", "POST", "/api/repos/create", {"json": {"name": "x", "type": "cat"}}, "repo type"),
    ("create: type list", "POST", "/api/repos/create", {"json": {"name": "x", "type": []}}, "'type'"),
    (
        "create: private str",
        "POST",
        "/api/repos/create",
        {"json": {"name": "x", "private": "yes"}},
        "'private'",
    ),
    (
        "create: visibility",
        "POST",
        "/api/repos/create",
        {"json": {"name": "x", "visibility": "x"}},
        "visibility",
    ),
    (
        "create: org list",
        "POST",
        "/api/repos/create",
        {"json": {"name": "x", "organization": []}},
        "organization",
    ),
    ("create: --", "POST", "/api/repos/create", {"json": {"name": "a--b"}}, "Invalid repo id"),
    ("create: ..", "POST", "/api/repos/create", {"json": {"name": "a..b"}}, "Invalid repo id"),
    ("create: control", "POST", "/api/repos/create", {"json": {"name": "a\x01b"}}, "Invalid repo id"),
    ("create: long", "POST", "/api/repos/create", {"json": {"name": "a" * 97}}, "Invalid repo id"),
    ("create: slash", "POST", "/api/repos/create", {"json": {"name": "a/b"}}, "Invalid repo id"),
    (
        "create: reserved",
        "POST",
        "/api/repos/create",
        {"json": {"name": "x", "organization": "api"}},
        "reserved",
    ),
    ("create: surrogate", "POST", "/api/repos/create", {"content": b'{"name": "x\\ud800"}'}, "surrogate"),
    ("create: sdk int", "POST", "/api/repos/create", {"json": {"name": "x", "sdk": 1}}, "'sdk'"),
    ("delete: not JSON", "DELETE", "/api/repos/delete", {"content": b"\xff"}, "not valid JSON"),
    ("delete: name int", "DELETE", "/api/repos/delete", {"json": {"name": 1}}, "'name'"),
    ("delete: missing", "DELETE", "/api/repos/delete", {"json": {"name": "nope"}}, "not found"),
    ("move: no toRepo", "POST", "/api/repos/move", {"json": {"fromRepo": REPO}}, "'toRepo'"),
    ("move: int", "POST", "/api/repos/move", {"json": {"fromRepo": 1, "toRepo": "me/x"}}, "'fromRepo'"),
    (
        "move: bad target",
        "POST",
        "/api/repos/move",
        {"json": {"fromRepo": REPO, "toRepo": "me/../x"}},
        "Invalid repo id",
    ),
    ("move: onto itself", "POST", "/api/repos/move", {"json": {"fromRepo": REPO, "toRepo": REPO}}, "exists"),
    ("settings: not JSON", "PUT", f"{API}/settings", {"content": b"["}, "not valid JSON"),
    ("settings: private", "PUT", f"{API}/settings", {"json": {"private": "no"}}, "'private'"),
    ("settings: visibility", "PUT", f"{API}/settings", {"json": {"visibility": "hidden"}}, "visibility"),
    ("list: limit", "GET", "/api/models?limit=-1", {}, "limit"),
    ("list: limit text", "GET", "/api/models?limit=ten", {}, "limit"),
    ("list: kind", "GET", "/api/cats", {}, "repo kind"),
    ("info: bad id", "GET", "/api/models/me/a..b", {}, "Invalid repo id"),
    ("info: revision", "GET", f"{API}/revision/nope", {}, "rev"),
    ("commits: cursor", "GET", f"{API}/commits/main?cursor=-1", {}, "cursor"),
    ("commits: limit", "GET", f"{API}/commits/main?limit=0", {}, "limit"),
    ("tree: limit", "GET", f"{API}/tree/main?limit=abc", {}, "limit"),
    ("tree: folder", "GET", f"{API}/tree/main/nope", {}, "not found"),
    ("refs: bad id", "GET", "/api/models/me/-x/refs", {}, "Invalid repo id"),
    ("page: rev", "GET", f"/{REPO}/tree/nope", {}, "rev"),
    ("page: id", "GET", "/datasets/me/a..b", {}, "Invalid repo id"),
    ("page: folder", "GET", f"/{REPO}/tree/main/nope", {}, "not found"),
    # preupload
    ("preupload: not JSON", "POST", f"{API}/preupload/main", {"content": b"x"}, "not valid JSON"),
    ("preupload: files", "POST", f"{API}/preupload/main", {"json": {"files": {}}}, "'files'"),
    ("preupload: item", "POST", f"{API}/preupload/main", {"json": {"files": [1]}}, "files[0]"),
    ("preupload: path", "POST", f"{API}/preupload/main", {"json": {"files": [{"path": 1}]}}, "'path'"),
    (
        "preupload: size",
        "POST",
        f"{API}/preupload/main",
        {"json": {"files": [{"path": "a", "size": "1"}]}},
        "'size'",
    ),
    (
        "preupload: neg",
        "POST",
        f"{API}/preupload/main",
        {"json": {"files": [{"path": "a", "size": -1}]}},
        "'size'",
    ),
    (
        "preupload: sample",
        "POST",
        f"{API}/preupload/main",
        {"json": {"files": [{"path": "a", "sample": "!!"}]}},
        "base64",
    ),
    # commit
    ("commit: not JSON", "POST", f"{API}/commit/main", {"content": b"{oops\n"}, "line 1"),
    ("commit: array", "POST", f"{API}/commit/main", {"content": ndjson([1])}, "line 1"),
    (
        "commit: no header",
        "POST",
        f"{API}/commit/main",
        {"content": ndjson(op("file", path="a", content="x"))},
        "header",
    ),
    ("commit: empty", "POST", f"{API}/commit/main", {"content": b""}, "header"),
    (
        "commit: value",
        "POST",
        f"{API}/commit/main",
        {"content": ndjson(header(), {"key": "file", "value": 3})},
        "'value'",
    ),
    (
        "commit: path int",
        "POST",
        f"{API}/commit/main",
        {"content": ndjson(header(), op("file", path=1))},
        "'path'",
    ),
    (
        "commit: path ..",
        "POST",
        f"{API}/commit/main",
        {"content": ndjson(header(), op("file", path="../x"))},
        "Invalid path",
    ),
    (
        "commit: path /",
        "POST",
        f"{API}/commit/main",
        {"content": ndjson(header(), op("file", path="/x"))},
        "Invalid path",
    ),
    (
        "commit: control",
        "POST",
        f"{API}/commit/main",
        {"content": ndjson(header(), op("file", path="a\x07b"))},
        "control",
    ),
    (
        "commit: .git",
        "POST",
        f"{API}/commit/main",
        {"content": ndjson(header(), op("file", path=".git/x"))},
        ".git",
    ),
    (
        "commit: long",
        "POST",
        f"{API}/commit/main",
        {"content": ndjson(header(), op("file", path="a" * 1001))},
        "longer",
    ),
    (
        "commit: content",
        "POST",
        f"{API}/commit/main",
        {"content": ndjson(header(), op("file", path="a", content=[1]))},
        "'content'",
    ),
    (
        "commit: base64",
        "POST",
        f"{API}/commit/main",
        {"content": ndjson(header(), op("file", path="a", content="%%%", encoding="base64"))},
        "base64",
    ),
    (
        "commit: summary",
        "POST",
        f"{API}/commit/main",
        {"content": ndjson(header(summary=5), op("file", path="a"))},
        "'summary'",
    ),
    (
        "commit: parent",
        "POST",
        f"{API}/commit/main",
        {"content": ndjson(header(parentCommit="xyz"), op("file", path="a"))},
        "parentCommit",
    ),
    (
        "commit: parent int",
        "POST",
        f"{API}/commit/main",
        {"content": ndjson(header(parentCommit=7), op("file", path="a"))},
        "parentCommit",
    ),
    (
        "commit: stale parent",
        "POST",
        f"{API}/commit/main",
        {"content": ndjson(header(parentCommit=HEAD), op("file", path="a"))},
        "commit has happened",
    ),
    (
        "commit: unknown op",
        "POST",
        f"{API}/commit/main",
        {"content": ndjson(header(), op("rename", path="a"))},
        "unsupported",
    ),
    (
        "commit: lfs no oid",
        "POST",
        f"{API}/commit/main",
        {"content": ndjson(header(), op("lfsFile", path="a.bin"))},
        "'oid'",
    ),
    (
        "commit: lfs bad oid",
        "POST",
        f"{API}/commit/main",
        {"content": ndjson(header(), op("lfsFile", path="a.bin", oid="x"))},
        "sha256",
    ),
    (
        "commit: lfs unknown",
        "POST",
        f"{API}/commit/main",
        {"content": ndjson(header(), op("lfsFile", path="a.bin", oid=NEW_OID, size=1))},
        "never uploaded",
    ),
    (
        "commit: lfs size",
        "POST",
        f"{API}/commit/main",
        {
            "content": ndjson(
                header(), op("lfsFile", path="a.bin", oid=hashlib.sha256(b"\0" * 100).hexdigest(), size=True)
            )
        },
        "'size'",
    ),
    (
        "commit: delete missing",
        "POST",
        f"{API}/commit/main",
        {"content": ndjson(header(), op("deletedFile", path="nope"))},
        "no such file",
    ),
    (
        "commit: half valid",
        "POST",
        f"{API}/commit/main",
        {
            "content": ndjson(
                header(), op("file", path="good.txt", content="x"), op("deletedFolder", path="nope")
            )
        },
        "no such folder",
    ),
    (
        "commit: file over folder",
        "POST",
        f"{API}/commit/main",
        {"content": ndjson(header(), op("file", path="folder", content="x"))},
        "folder of that name",
    ),
    (
        "commit: folder over file",
        "POST",
        f"{API}/commit/main",
        {"content": ndjson(header(), op("file", path="README.md/x", content="x"))},
        "folder of that name",
    ),
    (
        "commit: create_pr",
        "POST",
        f"{API}/commit/main?create_pr=1",
        {"content": ndjson(header())},
        "create_pr",
    ),
    (
        "commit: branch",
        "POST",
        f"{API}/commit/nope",
        {"content": ndjson(header(), op("file", path="a"))},
        "not found",
    ),
    # branches and tags
    ("branch: not JSON", "POST", f"{API}/branch/b1", {"content": b"{"}, "not valid JSON"),
    ("branch: start int", "POST", f"{API}/branch/b1", {"json": {"startingPoint": 1}}, "startingPoint"),
    ("branch: start missing", "POST", f"{API}/branch/b1", {"json": {"startingPoint": "nope"}}, "rev"),
    ("branch: ..", "POST", f"{API}/branch/a..b", {}, "Invalid branch"),
    ("branch: dot", "POST", f"{API}/branch/.hidden", {}, "Invalid branch"),
    ("branch: lock", "POST", f"{API}/branch/x.lock", {}, "Invalid branch"),
    ("branch: sha", "POST", f"{API}/branch/{'a' * 40}", {}, "Invalid branch"),
    ("branch: space", "POST", f"{API}/branch/a%20b", {}, "Invalid branch"),
    ("branch: //", "POST", f"{API}/branch/a%2F%2Fb", {}, "Invalid branch"),
    ("branch: exists", "POST", f"{API}/branch/dev", {}, "already exists"),
    ("branch: delete main", "DELETE", f"{API}/branch/main", {}, "main"),
    ("branch: delete missing", "DELETE", f"{API}/branch/nope", {}, "not found"),
    ("tag: no tag", "POST", f"{API}/tag/main", {"json": {}}, "'tag'"),
    ("tag: int", "POST", f"{API}/tag/main", {"json": {"tag": 1}}, "'tag'"),
    ("tag: message", "POST", f"{API}/tag/main", {"json": {"tag": "t2", "message": 1}}, "'message'"),
    ("tag: invalid", "POST", f"{API}/tag/main", {"json": {"tag": "a b"}}, "Invalid branch or tag"),
    ("tag: delete missing", "DELETE", f"{API}/tag/nope", {}, "not found"),
    # files
    ("paths-info: JSON", "POST", f"{API}/paths-info/main", {"json": {"paths": ["a"]}}, "form"),
    ("paths-info: file", "POST", f"{API}/paths-info/main", {"files": {"paths": ("a", b"x")}}, "'paths'"),
    ("resolve: CJK", "GET", f"/{REPO}/resolve/main/{CJK}", {}, "not found"),
    ("resolve: rev", "GET", f"/{REPO}/resolve/nope/README.md", {}, "rev"),
    ("resolve: NUL", "GET", f"/{REPO}/resolve/main/a%00b", {}, "NUL"),
    ("xet", "GET", f"{API}/xet-write-token/main", {}, "Xet"),
    # LFS
    ("batch: not JSON", "POST", f"/{REPO}.git/info/lfs/objects/batch", {"content": b"]"}, "not valid JSON"),
    (
        "batch: operation",
        "POST",
        f"/{REPO}.git/info/lfs/objects/batch",
        {"json": {"operation": "nuke"}},
        "'operation'",
    ),
    (
        "batch: objects",
        "POST",
        f"/{REPO}.git/info/lfs/objects/batch",
        {"json": {"operation": "upload", "objects": "x"}},
        "'objects'",
    ),
    (
        "batch: object",
        "POST",
        f"/{REPO}.git/info/lfs/objects/batch",
        {"json": {"operation": "upload", "objects": [[]]}},
        "objects[0]",
    ),
    (
        "batch: oid",
        "POST",
        f"/{REPO}.git/info/lfs/objects/batch",
        {"json": {"operation": "upload", "objects": [{"oid": "x", "size": 1}]}},
        "sha256",
    ),
    (
        "batch: size",
        "POST",
        f"/{REPO}.git/info/lfs/objects/batch",
        {"json": {"operation": "upload", "objects": [{"oid": NEW_OID, "size": -5}]}},
        "'size'",
    ),
    ("upload: no sig", "PUT", f"/_lfs/upload/{NEW_OID}?size=1", {"content": b"x"}, "sig"),
    (
        "upload: bad sig",
        "PUT",
        f"/_lfs/upload/{NEW_OID}?size=1&repo=models/{REPO}&exp=99999999999&sig=x",
        {"content": b"x"},
        "signature",
    ),
    ("upload: size", "PUT", f"/_lfs/upload/{NEW_OID}?size=abc&repo=x&exp=1&sig=x", {"content": b"x"}, "size"),
    ("verify: bad sig", "POST", f"/_lfs/verify?repo=models/{REPO}&exp=1&sig=x", {"json": {}}, "signature"),
    ("download: bad sig", "GET", f"/_lfs/objects/{NEW_OID}?exp=99999999999&sig=x", {}, "signature"),
    ("download: exp", "GET", f"/_lfs/objects/{NEW_OID}?exp=soon&sig=x", {}, "exp"),
    # collections
    ("collection: not JSON", "POST", "/api/collections", {"content": b"x"}, "not valid JSON"),
    ("collection: title", "POST", "/api/collections", {"json": {"title": 5}}, "'title'"),
    ("collection: empty", "POST", "/api/collections", {"json": {"title": "  "}}, "title"),
    (
        "collection: private",
        "POST",
        "/api/collections",
        {"json": {"title": "t", "private": "y"}},
        "'private'",
    ),
    ("collection: ns", "POST", "/api/collections", {"json": {"title": "t", "namespace": 1}}, "'namespace'"),
    ("collection: slug", "GET", "/api/collections/me/nope", {}, "not found"),
    ("collections: limit", "GET", "/api/collections?limit=0", {}, "limit"),
    # validate-yaml, admin
    ("yaml: not JSON", "POST", "/api/validate-yaml", {"content": b"x"}, "not valid JSON"),
    ("yaml: content", "POST", "/api/validate-yaml", {"json": {"content": 1}}, "'content'"),
    ("admin: not JSON", "PUT", "/_admin/faults", {"content": b"x", "admin": True}, "not valid JSON"),
    ("admin: rules", "PUT", "/_admin/faults", {"json": {"rules": 3}, "admin": True}, "fault config"),
    (
        "admin: rule",
        "PUT",
        "/_admin/faults",
        {"json": {"rules": [{"kind": "boom"}]}, "admin": True},
        "fault config",
    ),
]
COLLECTION_CASES = [
    ("item: missing", "POST", "/items", {"json": {}}, "'id'"),
    ("item: not object", "POST", "/items", {"json": {"item": 1}}, "'item'"),
    ("item: id int", "POST", "/items", {"json": {"item": {"id": 1, "type": "model"}}}, "'id'"),
    ("item: type", "POST", "/items", {"json": {"item": {"id": REPO, "type": "cat"}}}, "type"),
    ("item: note", "POST", "/items", {"json": {"item": {"id": REPO, "type": "model"}, "note": 1}}, "'note'"),
]


def send(hub, method: str, path: str, kwargs: dict[str, Any]) -> httpx.Response:
    kwargs = dict(kwargs)
    token = ADMIN if kwargs.pop("admin", False) else TOKEN
    headers = {"authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    return hub.http.request(method, f"{hub.endpoint}{path}", headers=headers, **kwargs)


def assert_clean_4xx(response: httpx.Response, word: str, name: str) -> None:
    assert 400 <= response.status_code < 500, (name, response.status_code, response.text[:500])
    message = response.headers.get("x-error-message", "") + " " + response.text
    assert word.lower() in message.lower(), (name, word, message[:500])
    response.headers.get("x-error-message", "").encode("latin-1")  # headers stay Latin-1
    assert len(response.headers.get("x-error-message", "")) <= 300, name


def test_every_malformed_request_is_a_4xx_naming_the_problem_and_changes_nothing(hub) -> None:
    before = snapshot(hub.root)
    cases = CASES + [
        (n, m, f"/api/collections/{hub.collection}{p}", k, w) for n, m, p, k, w in COLLECTION_CASES
    ]
    for name, method, path, kwargs, word in cases:
        assert_clean_4xx(send(hub, method, path, kwargs), word, name)
    assert snapshot(hub.root) == before


def test_lfs_uploads_refuse_bad_content_and_more_bytes_than_signed(hub) -> None:
    data = os.urandom(300)
    oid = hashlib.sha256(data).hexdigest()
    before = snapshot(hub.root)
    urls = lfs_urls(hub, oid, len(data))
    assert_clean_4xx(
        send(hub, "PUT", urls["upload"], {"content": data + b"x"}), "larger than", "oversize upload"
    )
    assert_clean_4xx(
        send(hub, "PUT", urls["upload"], {"content": os.urandom(300)}), "hashes to", "wrong content"
    )
    assert_clean_4xx(send(hub, "POST", urls["verify"], {"content": b"x"}), "not valid JSON", "verify body")
    assert_clean_4xx(
        send(hub, "POST", urls["verify"], {"json": {"oid": oid, "size": 300}}), "not stored", "verify"
    )
    tampered = urls["upload"].replace(f"size={len(data)}", f"size={len(data) + 1}")
    assert_clean_4xx(send(hub, "PUT", tampered, {"content": data + b"x"}), "signature", "tampered size")
    assert snapshot(hub.root) == before


def test_bodies_over_the_limit_are_413_whether_announced_or_streamed(hub) -> None:
    before = snapshot(hub.root)
    big = ndjson(header(), op("file", path="big.txt", content="x" * MAX_BODY))
    assert_clean_4xx(send(hub, "POST", f"{API}/commit/main", {"content": big}), "limit", "content-length")
    assert send(hub, "POST", f"{API}/commit/main", {"content": big}).status_code == 413

    def chunks():  # no Content-Length: chunked transfer, counted as it streams
        for _ in range(5):
            yield b"x" * (MAX_BODY // 2)

    assert send(hub, "POST", f"{API}/commit/main", {"content": chunks()}).status_code == 413
    assert snapshot(hub.root) == before


def test_bad_credentials_and_odd_headers_are_4xx(hub) -> None:
    for value in (b"Bearer \xff\xfe", b"Basic abc", b"Bearer " + b"x" * 5000):
        response = httpx.get(f"{hub.endpoint}/api/whoami-v2", headers={"authorization": value})
        assert response.status_code == 401, value[:20]
    admin = httpx.get(f"{hub.endpoint}/_admin/faults", headers={"authorization": b"Bearer \xff"})
    assert admin.status_code == 401


def test_a_valid_commit_after_all_that_still_works(hub) -> None:
    api = HfApi(endpoint=hub.endpoint, token=TOKEN)
    info = api.upload_file(path_or_fileobj=base64.b64encode(b"ok"), path_in_repo="ok.txt", repo_id=REPO)
    assert info.oid and "ok.txt" in api.list_repo_files(REPO)


# Not JSON objects, broken JSON, nesting deep enough to overflow a recursive parser, and an object whose
# every field a route reads has the wrong type.
WRONG_TYPES = dict.fromkeys(
    ["name", "type", "private", "visibility", "files", "tag", "startingPoint", "title", "content"], [1]
) | dict.fromkeys(["operation", "item", "fromRepo", "rules", "key"], 1)
GARBAGE = [
    b"null",
    b"[]",
    b"123",
    b'"text"',
    b'{"a":',
    b"\xff\xfe\x00",
    b"[" * 100_000 + b"]" * 100_000,
    b"1e999999",
    json.dumps(WRONG_TYPES).encode(),
    b'{"name": "\\ud800", "key": "header", "value": {"summary": "\\udc00"}}',  # lone surrogates: not text
]
BODY_ROUTES = [
    ("POST", "/api/repos/create"),
    ("DELETE", "/api/repos/delete"),
    ("POST", "/api/repos/move"),
    ("PUT", f"{API}/settings"),
    ("POST", f"{API}/preupload/main"),
    ("POST", f"{API}/commit/main"),
    ("POST", f"{API}/branch/fuzz"),
    ("POST", f"{API}/tag/main"),
    ("POST", f"{API}/paths-info/main"),
    ("POST", f"/{REPO}.git/info/lfs/objects/batch"),
    ("POST", "/api/collections"),
    ("POST", "/api/validate-yaml"),
    ("PUT", "/_admin/faults"),
]


def test_garbage_bodies_on_every_body_route_are_4xx_and_change_nothing(hub) -> None:
    before = snapshot(hub.root)
    routes = BODY_ROUTES + [("POST", f"/api/collections/{hub.collection}/items")]
    for method, path in routes:
        for body in GARBAGE:
            kwargs = {
                "content": body,
                "headers": {"content-type": "application/json"},
                "admin": "_admin" in path,
            }
            response = send(hub, method, path, kwargs)
            assert 400 <= response.status_code < 500, (
                method,
                path,
                body[:20],
                response.status_code,
                response.text[:300],
            )
            assert response.headers.get("x-error-message"), (method, path, body[:20])
    assert snapshot(hub.root) == before


def test_a_card_with_a_yaml_alias_bomb_is_refused_not_expanded(hub) -> None:
    bomb = "---\na: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b]\n---\n"
    response = send(hub, "POST", "/api/validate-yaml", {"json": {"content": bomb}})
    assert response.status_code == 400 and "alias" in response.text
