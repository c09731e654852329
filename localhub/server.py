"""The FastAPI application: the subset of the Hugging Face Hub HTTP API that huggingface_hub,
transformers, peft and datasets use (see docs/localhub.md for the route list).

Handlers doing disk work are plain ``def`` (FastAPI runs them in its thread pool) so one slow
upload never stalls other requests; those that must read a request body are ``async`` and hand the
storage work to the pool."""

from __future__ import annotations

import base64
import hmac
import json
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode

import yaml
from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from common.io import write_json
from localhub.faults import FaultConfig, FaultConfigError, FaultInjector, FaultMiddleware
from localhub.storage import (
    Commit,
    Entry,
    HubError,
    Operation,
    Repo,
    Storage,
    check_path,
    lfs_pointer,
    now_iso,
    wants_lfs,
)
from localhub.tree import card_data, list_tree, paginate, path_info

KINDS = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
BAD_CREDENTIALS = "Invalid credentials in Authorization header"  # huggingface_hub keys its 401 handling on it


@dataclass
class HubSettings:
    """Who may do what. ``tokens`` maps a write token to the user name it authenticates."""

    tokens: dict[str, str]
    admin_token: str
    faults: FaultConfig = field(default_factory=FaultConfig)


@dataclass
class Hub:
    storage: Storage
    settings: HubSettings
    injector: FaultInjector
    collections_lock: threading.Lock = field(default_factory=threading.Lock)

    def user(self, request: Request) -> str | None:
        """The user a request's token authenticates; 401 for a token that is present but unknown."""
        header = request.headers.get("authorization", "")
        if not header:
            return None
        token = header.removeprefix("Bearer ").strip()
        if token not in self.settings.tokens:
            raise HubError(
                401,
                "the token sent is not one of this local Hub's tokens (see --token;"
                " the default staging token is in docs/localhub.md)",
                "Unauthorized",
            )
        return self.settings.tokens[token]

    def writer(self, request: Request) -> str:
        user = self.user(request)
        if user is None:
            raise HubError(
                401,
                "writes need a token: pass token=... to HfApi or set HF_TOKEN to one of the"
                " server's tokens (see docs/localhub.md)",
                "Unauthorized",
            )
        return user

    def readable_repo(self, request: Request, kind: str, repo_id: str) -> Repo:
        repo = self.storage.get_repo(_repo_type(kind), repo_id)
        if repo.private and self.user(request) is None:
            raise HubError(404, f"Repository {kind}/{repo_id} not found.", "RepoNotFound")
        return repo

    def sign(self, value: str) -> str:
        return hmac.new(self.storage.secret, value.encode(), "sha256").hexdigest()


def _repo_type(kind: str) -> str:
    if kind not in KINDS:
        raise HubError(404, f"Unknown repo kind {kind!r}: expected models, datasets or spaces.")
    return KINDS[kind]


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _error_response(exc: HubError) -> JSONResponse:
    headers = {"X-Error-Message": BAD_CREDENTIALS if exc.status == 401 else exc.message.splitlines()[0]}
    if exc.code:
        headers["X-Error-Code"] = exc.code
    return JSONResponse({"error": exc.message}, status_code=exc.status, headers=headers)


class KeepEncodedSlashes:
    """Route on the raw path with ``%2F`` kept encoded, so a revision such as ``refs%2Fpr%2F1``
    stays one path segment (huggingface_hub quotes revisions with ``safe=""``)."""

    def __init__(self, app: Callable[..., Any]):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and b"%2f" in scope.get("raw_path", b"").lower():
            raw = scope["raw_path"].decode("latin-1")
            scope = dict(scope, path=unquote(re.sub("%2[fF]", "%252F", raw)))
        await self.app(scope, receive, send)


def create_app(storage: Storage, settings: HubSettings) -> Any:
    """The ASGI app: FastAPI routes behind the URL and fault middlewares."""
    hub = Hub(storage, settings, FaultInjector(settings.faults))
    app = FastAPI(
        title="localhub",
        description="Local Hugging Face Hub-compatible server",
        docs_url="/_docs",
        openapi_url="/_openapi.json",
        redoc_url=None,
    )
    app.state.hub = hub

    @app.exception_handler(HubError)
    async def _hub_error(request: Request, exc: HubError) -> JSONResponse:
        return _error_response(exc)

    # Order matters: /api/collections/... and /api/whoami-v2 must win over /api/{kind}/{ns}/{name}.
    for register in (
        _admin_routes,
        _account_routes,
        _collection_routes,
        _repo_routes,
        _commit_routes,
        _file_routes,
        _lfs_routes,
    ):
        register(app, hub)
    return FaultMiddleware(KeepEncodedSlashes(app), hub.injector)


# ---- admin, health, index -----------------------------------------------------------------------
def _admin_routes(app: FastAPI, hub: Hub) -> None:
    def require_admin(request: Request) -> None:
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not secrets.compare_digest(token, hub.settings.admin_token):
            raise HubError(401, "admin routes need the admin token (--admin-token)", "Unauthorized")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "root": str(hub.storage.root)}

    @app.get("/_admin/faults")
    def get_faults(request: Request) -> dict[str, Any]:
        require_admin(request)
        return {"config": hub.injector.config.to_obj(), "counts": hub.injector.counts()}

    @app.put("/_admin/faults")
    async def put_faults(request: Request) -> dict[str, Any]:
        require_admin(request)
        try:
            config = FaultConfig.from_obj(await request.json() if await request.body() else None)
        except (FaultConfigError, json.JSONDecodeError, TypeError) as err:
            raise HubError(400, f"invalid fault config: {err}") from err
        hub.injector.configure(config)
        return {"config": config.to_obj(), "counts": hub.injector.counts()}

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> str:
        rows = "".join(
            f"<li>{t}: <a href='/api/{t}s/{r.id}'>{r.id}</a> (branches: {', '.join(sorted(r.branches))})</li>"
            for t in KINDS.values()
            for r in hub.storage.iter_repos(t)
        )
        return (
            f"<h1>localhub</h1><p>Use it with <code>HF_ENDPOINT={_base(request)}"
            f" HF_HUB_DISABLE_XET=1</code>.</p><ul>{rows}</ul>"
        )


# ---- account, repos -----------------------------------------------------------------------------
def _account_routes(app: FastAPI, hub: Hub) -> None:
    @app.get("/api/whoami-v2")
    def whoami(request: Request) -> dict[str, Any]:
        user = hub.writer(request)
        return {
            "type": "user",
            "id": hub.sign(user)[:24],
            "name": user,
            "fullname": user,
            "email": None,
            "emailVerified": False,
            "isPro": False,
            "orgs": [],
            "auth": {"type": "access_token", "accessToken": {"displayName": "localhub", "role": "write"}},
        }

    @app.post("/api/validate-yaml")
    async def validate_yaml(request: Request) -> JSONResponse:
        content = (await request.json()).get("content", "")
        errors: list[dict[str, str]] = []
        match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.S)
        if match:
            try:
                meta = yaml.safe_load(match.group(1))
                if meta is not None and not isinstance(meta, dict):
                    errors.append({"message": "the YAML front matter must be a mapping"})
            except yaml.YAMLError as err:
                errors.append({"message": f"invalid YAML front matter: {err}"})
        body = {"errors": errors, "warnings": []}
        return JSONResponse(body, status_code=400 if errors else 200)


def _repo_routes(app: FastAPI, hub: Hub) -> None:
    @app.post("/api/repos/create")
    async def create_repo(request: Request) -> JSONResponse:
        user = hub.writer(request)
        payload = await request.json()
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or user}/{payload.get('name')}"
        private = payload.get("visibility", "private" if payload.get("private") else "public") != "public"
        url = f"{_base(request)}/{URL_PREFIX.get(repo_type, '')}{repo_id}"
        try:
            await run_in_threadpool(
                hub.storage.create_repo, repo_type, repo_id, user, private, payload.get("sdk")
            )
        except HubError as err:
            if err.status == 409:
                return JSONResponse(
                    {"error": err.message, "url": url},
                    status_code=409,
                    headers={"X-Error-Message": err.message},
                )
            raise
        return JSONResponse({"url": url, "name": repo_id, "id": repo_id})

    @app.delete("/api/repos/delete")
    async def delete_repo(request: Request) -> dict[str, Any]:
        user = hub.writer(request)
        payload = await request.json()
        repo_id = f"{payload.get('organization') or user}/{payload.get('name')}"
        await run_in_threadpool(hub.storage.delete_repo, payload.get("type") or "model", repo_id)
        return {}

    @app.put("/api/{kind}/{ns}/{name}/settings")
    async def settings(kind: str, ns: str, name: str, request: Request) -> dict[str, Any]:
        hub.writer(request)
        payload = await request.json()
        storage, repo_id = hub.storage, f"{ns}/{name}"
        with storage.lock(_repo_type(kind), repo_id):
            repo = storage.get_repo(_repo_type(kind), repo_id)
            if "private" in payload or "visibility" in payload:
                repo.private = bool(payload.get("private", payload.get("visibility") == "private"))
            storage.save_repo(repo)
        return {}

    @app.get("/api/{kind}")
    def list_repos(
        kind: str,
        request: Request,
        author: str | None = None,
        search: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        repo_type = _repo_type(kind)
        authed = hub.user(request) is not None
        repos = [
            r
            for r in hub.storage.iter_repos(repo_type)
            if (authed or not r.private)
            and (author is None or r.id.split("/")[0] == author)
            and (search is None or search.lower() in r.id.lower())
        ]
        return [
            {
                "id": r.id,
                "_id": hub.sign(r.id)[:24],
                "private": r.private,
                "createdAt": r.created_at,
                "sha": r.branches["main"],
            }
            for r in repos[:limit]
        ]

    @app.get("/api/{kind}/{ns}/{name}")
    def repo_info(kind: str, ns: str, name: str, request: Request, blobs: bool = False) -> dict[str, Any]:
        return _repo_info(hub, request, kind, f"{ns}/{name}", "main", blobs)

    @app.get("/api/{kind}/{ns}/{name}/revision/{rev}")
    def repo_info_at(
        kind: str, ns: str, name: str, rev: str, request: Request, blobs: bool = False
    ) -> dict[str, Any]:
        return _repo_info(hub, request, kind, f"{ns}/{name}", unquote(rev), blobs)

    @app.get("/api/{kind}/{ns}/{name}/refs")
    def refs(kind: str, ns: str, name: str, request: Request) -> dict[str, Any]:
        repo = hub.readable_repo(request, kind, f"{ns}/{name}")

        def fmt(prefix: str, refs: dict[str, str]) -> list[dict[str, str]]:
            return [
                {"name": n, "ref": f"refs/{prefix}/{n}", "targetCommit": sha}
                for n, sha in sorted(refs.items())
            ]

        return {
            "branches": fmt("heads", repo.branches),
            "tags": fmt("tags", repo.tags),
            "converts": [],
            "pullRequests": [],
        }

    @app.get("/api/{kind}/{ns}/{name}/commits/{rev}")
    def commits(
        kind: str,
        ns: str,
        name: str,
        rev: str,
        request: Request,
        response: Response,
        cursor: int = 0,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        repo = hub.readable_repo(request, kind, f"{ns}/{name}")
        history = list(hub.storage.history(hub.storage.resolve(repo, unquote(rev))))
        items = [
            {
                "id": c.id,
                "title": c.title,
                "message": c.message,
                "authors": [{"user": c.author}],
                "date": c.date,
            }
            for c in history
        ]
        return paginate(items, request, response, cursor, limit)


def _repo_info(
    hub: Hub, request: Request, kind: str, repo_id: str, revision: str, blobs: bool
) -> dict[str, Any]:
    repo = hub.readable_repo(request, kind, repo_id)
    commit = hub.storage.get_commit(hub.storage.resolve(repo, revision))
    card = card_data(hub.storage, commit)
    info: dict[str, Any] = {
        "_id": hub.sign(repo.id)[:24],
        "id": repo.id,
        "author": repo.id.split("/")[0],
        "sha": commit.id,
        "lastModified": commit.date,
        "createdAt": repo.created_at,
        "private": repo.private,
        "gated": False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": _tags(card),
        "cardData": card,
        "siblings": [_sibling(path, entry, blobs) for path, entry in sorted(commit.tree.items())],
    }
    if repo.type == "model":
        info.update(
            modelId=repo.id,
            library_name=card.get("library_name") if card else None,
            pipeline_tag=card.get("pipeline_tag") if card else None,
        )
    if repo.type == "space":
        info.update(sdk=repo.sdk or (card or {}).get("sdk"), runtime={"stage": "NO_APP_FILE"})
    return info


def _tags(card: dict[str, Any] | None) -> list[str]:
    if not card:
        return []
    tags = card.get("tags") or []
    tags = [str(t) for t in (tags if isinstance(tags, list) else [tags])]
    if card.get("license"):
        tags.append(f"license:{card['license']}")
    return tags


def _sibling(path: str, entry: Entry, blobs: bool) -> dict[str, Any]:
    if not blobs:
        return {"rfilename": path}
    sibling: dict[str, Any] = {"rfilename": path, "size": entry.size, "blobId": entry.oid}
    if entry.lfs:
        sibling["lfs"] = {
            "size": entry.size,
            "sha256": entry.sha256,
            "pointerSize": len(lfs_pointer(entry.sha256, entry.size)),
        }
    return sibling


# ---- preupload, commit, branches, tags ----------------------------------------------------------
def _commit_routes(app: FastAPI, hub: Hub) -> None:
    @app.get("/api/{kind}/{ns}/{name}/xet-{token_type}-token/{rev}")
    def xet_token(kind: str, ns: str, name: str, token_type: str, rev: str) -> None:
        # huggingface_hub uses Xet whenever hf_xet is installed: say what to do instead of a bare 404.
        raise HubError(
            501,
            "The local Hub does not speak the Xet protocol: set HF_HUB_DISABLE_XET=1 in the"
            " environment before huggingface_hub is imported, so it uses the LFS protocol.",
        )

    @app.post("/api/{kind}/{ns}/{name}/preupload/{rev}")
    async def preupload(kind: str, ns: str, name: str, rev: str, request: Request) -> dict[str, Any]:
        hub.writer(request)
        payload = await request.json()
        repo = hub.readable_repo(request, kind, f"{ns}/{name}")
        commit = hub.storage.get_commit(hub.storage.resolve(repo, unquote(rev)))
        return {"files": [_upload_mode(commit, f) for f in payload.get("files", [])], "commitOid": commit.id}

    @app.post("/api/{kind}/{ns}/{name}/commit/{rev}")
    async def commit(kind: str, ns: str, name: str, rev: str, request: Request) -> dict[str, Any]:
        user = hub.writer(request)
        if request.query_params.get("create_pr") in ("1", "true", "True"):
            raise HubError(400, "create_pr is not supported by the local Hub: commit to a branch instead.")
        repo_type, repo_id = _repo_type(kind), f"{ns}/{name}"
        hub.readable_repo(request, kind, repo_id)
        lines = [json.loads(line) for line in (await request.body()).splitlines() if line.strip()]
        header, operations = await run_in_threadpool(_parse_commit, hub.storage, lines)
        new = await run_in_threadpool(
            hub.storage.commit,
            repo_type,
            repo_id,
            unquote(rev),
            operations,
            header.get("summary") or "update",
            header.get("description") or "",
            user,
            header.get("parentCommit"),
        )
        return {
            "success": True,
            "commitOid": new.id,
            "hookOutput": "",
            "commitUrl": f"{_base(request)}/{URL_PREFIX[repo_type]}{repo_id}/commit/{new.id}",
        }

    async def create_ref(
        request: Request, kind: str, repo_id: str, ref_kind: str, ref: str, revision: str
    ) -> dict[str, Any]:
        hub.writer(request)
        repo = hub.readable_repo(request, kind, repo_id)
        target = hub.storage.resolve(repo, revision)
        await run_in_threadpool(hub.storage.set_ref, repo.type, repo.id, ref_kind, ref, target)
        return {}

    @app.post("/api/{kind}/{ns}/{name}/branch/{branch}")
    async def create_branch(kind: str, ns: str, name: str, branch: str, request: Request) -> dict[str, Any]:
        payload = (await request.json()) if await request.body() else {}
        return await create_ref(
            request, kind, f"{ns}/{name}", "branch", unquote(branch), payload.get("startingPoint") or "main"
        )

    @app.post("/api/{kind}/{ns}/{name}/tag/{rev}")
    async def create_tag(kind: str, ns: str, name: str, rev: str, request: Request) -> dict[str, Any]:
        payload = await request.json()
        return await create_ref(request, kind, f"{ns}/{name}", "tag", str(payload.get("tag")), unquote(rev))

    for ref_kind in ("branch", "tag"):
        _delete_ref_route(app, hub, ref_kind)


def _delete_ref_route(app: FastAPI, hub: Hub, ref_kind: str) -> None:
    def delete_ref(kind: str, ns: str, name: str, ref: str, request: Request) -> dict[str, Any]:
        hub.writer(request)
        hub.storage.set_ref(_repo_type(kind), f"{ns}/{name}", ref_kind, unquote(ref), None)
        return {}

    app.add_api_route(f"/api/{{kind}}/{{ns}}/{{name}}/{ref_kind}/{{ref}}", delete_ref, methods=["DELETE"])


def _upload_mode(commit: Commit, file: dict[str, Any]) -> dict[str, Any]:

    path = str(file.get("path", ""))
    lfs = wants_lfs(path, int(file.get("size", 0)), base64.b64decode(file.get("sample", "") or ""))
    existing = commit.tree.get(path)
    oid = None if existing is None else (existing.sha256 if existing.lfs else existing.oid)
    return {"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}


def _parse_commit(storage: Storage, lines: list[dict[str, Any]]) -> tuple[dict[str, Any], list[Any]]:
    """NDJSON commit payload -> (header, operations); stores regular files' content as blobs."""

    if not lines or lines[0].get("key") != "header":
        raise HubError(400, "A commit payload starts with a {'key': 'header', ...} line.")
    operations = []
    for line in lines[1:]:
        key, value = line.get("key"), line.get("value") or {}
        raw_path = str(value.get("path", ""))
        path = check_path(raw_path.rstrip("/") if key == "deletedFolder" else raw_path)
        if key == "file":
            data = (
                base64.b64decode(value.get("content", ""))
                if value.get("encoding") == "base64"
                else str(value.get("content", "")).encode()
            )
            storage.put_bytes(data)
            operations.append(Operation("add", path, Entry.of(data, lfs=False)))
        elif key == "lfsFile":
            operations.append(Operation("add", path, _lfs_entry(storage, path, value)))
        elif key in ("deletedFile", "deletedFolder"):
            operations.append(Operation("delete_file" if key == "deletedFile" else "delete_folder", path))
        else:
            raise HubError(
                400,
                f"Unsupported commit operation {key!r} (supported: file, lfsFile,"
                " deletedFile, deletedFolder).",
            )
    return lines[0].get("value") or {}, operations


def _lfs_entry(storage: Storage, path: str, value: dict[str, Any]) -> Entry:
    oid = str(value.get("oid", ""))
    if value.get("algo", "sha256") != "sha256" or not storage.has_blob(oid):
        raise HubError(
            400,
            f"LFS file {path!r} points to object {oid} that was never uploaded: upload it"
            " through the LFS batch API (preupload_lfs_files) before committing.",
        )
    size = storage.blob_path(oid).stat().st_size
    if value.get("size") is not None and int(value["size"]) != size:
        raise HubError(400, f"LFS file {path!r}: announced size {value['size']} != stored size {size}.")
    return Entry.for_blob(oid, size, lfs=True)


# ---- trees, paths-info, resolve -----------------------------------------------------------------
def _file_routes(app: FastAPI, hub: Hub) -> None:
    def tree(
        kind: str,
        ns: str,
        name: str,
        rev: str,
        path: str,
        request: Request,
        response: Response,
        recursive: bool,
        expand: bool,
        cursor: int,
        limit: int,
    ) -> list[dict[str, Any]]:
        repo = hub.readable_repo(request, kind, f"{ns}/{name}")
        head = hub.storage.resolve(repo, unquote(rev))
        items = list_tree(hub.storage, head, unquote(path).strip("/"), recursive, expand)
        return paginate(items, request, response, cursor, limit)

    @app.get("/api/{kind}/{ns}/{name}/tree/{rev}")
    def tree_root(
        kind: str,
        ns: str,
        name: str,
        rev: str,
        request: Request,
        response: Response,
        recursive: bool = False,
        expand: bool = False,
        cursor: int = 0,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        return tree(kind, ns, name, rev, "", request, response, recursive, expand, cursor, limit)

    @app.get("/api/{kind}/{ns}/{name}/tree/{rev}/{path:path}")
    def tree_path(
        kind: str,
        ns: str,
        name: str,
        rev: str,
        path: str,
        request: Request,
        response: Response,
        recursive: bool = False,
        expand: bool = False,
        cursor: int = 0,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        return tree(kind, ns, name, rev, path, request, response, recursive, expand, cursor, limit)

    @app.post("/api/{kind}/{ns}/{name}/paths-info/{rev}")
    async def paths_info(kind: str, ns: str, name: str, rev: str, request: Request) -> list[dict[str, Any]]:
        repo = hub.readable_repo(request, kind, f"{ns}/{name}")
        form = await request.form()
        paths = [str(p) for p in form.getlist("paths")]
        expand = str(form.get("expand", "")).lower() in ("1", "true")
        head = hub.storage.resolve(repo, unquote(rev))
        return await run_in_threadpool(path_info, hub.storage, head, paths, expand)

    for prefix, kind in (("/datasets", "datasets"), ("/spaces", "spaces"), ("", "models")):
        _resolve_route(app, hub, prefix, kind)


def _resolve_route(app: FastAPI, hub: Hub, prefix: str, kind: str) -> None:
    def resolve(ns: str, name: str, rev: str, path: str, request: Request) -> Response:
        repo = hub.readable_repo(request, kind, f"{ns}/{name}")
        sha = hub.storage.resolve(repo, unquote(rev))
        entry = hub.storage.get_commit(sha).tree.get(unquote(path))
        if entry is None:
            exc = HubError(404, f"Entry {path!r} not found in {repo.id} at {rev}.", "EntryNotFound")
            response = _error_response(exc)
            response.headers["X-Repo-Commit"] = sha
            return response
        etag = entry.sha256 if entry.lfs else entry.oid
        headers = {"ETag": f'"{etag}"', "X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
        if entry.lfs:
            headers.update({"X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": str(entry.size)})
        return FileResponse(
            hub.storage.blob_path(entry.sha256), headers=headers, media_type="application/octet-stream"
        )

    app.add_api_route(prefix + "/{ns}/{name}/resolve/{rev}/{path:path}", resolve, methods=["GET", "HEAD"])


# ---- LFS batch API ------------------------------------------------------------------------------
def _lfs_routes(app: FastAPI, hub: Hub) -> None:
    for prefix, kind in (("/datasets", "datasets"), ("/spaces", "spaces"), ("", "models")):
        _lfs_batch_route(app, hub, prefix, kind)

    @app.put("/_lfs/upload/{oid}")
    async def upload(oid: str, request: Request, size: int, sig: str) -> Response:
        if not hmac.compare_digest(sig, hub.sign(f"upload:{oid}:{size}")):
            raise HubError(403, "LFS upload URL signature is invalid: ask the batch API for a fresh URL.")
        sink = hub.storage.new_upload()
        try:
            async for chunk in request.stream():
                sink.write(chunk)
            await run_in_threadpool(sink.finish, oid, size)
        finally:
            sink.discard()
        return Response(status_code=200)

    @app.post("/_lfs/verify")
    async def verify(request: Request) -> dict[str, Any]:
        hub.writer(request)
        payload = await request.json()
        if not hub.storage.has_blob(str(payload.get("oid")), payload.get("size")):
            raise HubError(
                404, f"LFS object {payload.get('oid')} with size {payload.get('size')} is not stored."
            )
        return {}

    @app.get("/_lfs/objects/{oid}")
    def download(oid: str, sig: str) -> Response:
        if not hmac.compare_digest(sig, hub.sign(f"download:{oid}")) or not hub.storage.has_blob(oid):
            raise HubError(404, f"LFS object {oid} not found.")
        return FileResponse(hub.storage.blob_path(oid), media_type="application/octet-stream")


def _lfs_batch_route(app: FastAPI, hub: Hub, prefix: str, kind: str) -> None:
    async def batch(ns: str, name: str, request: Request) -> JSONResponse:
        payload = await request.json()
        repo = hub.readable_repo(request, kind, f"{ns}/{name.removesuffix('.git')}")
        upload = payload.get("operation") == "upload"
        if upload:
            hub.writer(request)
        base = _base(request)
        objects = [_lfs_object(hub, base, obj, upload) for obj in payload.get("objects", [])]
        del repo
        return JSONResponse(
            {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
            media_type="application/vnd.git-lfs+json",
        )

    app.add_api_route(prefix + "/{ns}/{name}/info/lfs/objects/batch", batch, methods=["POST"])


def _lfs_object(hub: Hub, base: str, obj: dict[str, Any], upload: bool) -> dict[str, Any]:
    oid, size = str(obj.get("oid", "")), int(obj.get("size", 0))
    out: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
    present = re.fullmatch(r"[0-9a-f]{64}", oid) is not None and hub.storage.has_blob(oid, size)
    if upload and not present:
        query = urlencode({"size": size, "sig": hub.sign(f"upload:{oid}:{size}")})
        out["actions"] = {
            "upload": {"href": f"{base}/_lfs/upload/{oid}?{query}", "header": {}},
            "verify": {"href": f"{base}/_lfs/verify", "header": {}},
        }
    elif not upload and present:
        query = urlencode({"sig": hub.sign(f"download:{oid}")})
        out["actions"] = {"download": {"href": f"{base}/_lfs/objects/{oid}?{query}", "header": {}}}
    elif not upload:
        out["error"] = {"code": 404, "message": f"Object {oid} does not exist"}
    return out


# ---- collections --------------------------------------------------------------------------------
def _collection_routes(app: FastAPI, hub: Hub) -> None:
    storage = hub.storage

    def render(collection: dict[str, Any], listed: bool = False) -> dict[str, Any]:
        owner = collection["owner"]
        # Listings carry no position (the client numbers them itself); single collections do.
        extra = {} if listed else {"position": 0}
        return {**collection, **extra, "owner": {"name": owner, "type": "user", "_id": hub.sign(owner)[:24]}}

    def load(slug: str) -> dict[str, Any]:
        path = storage.collection_path(slug)
        if not path.exists():
            raise HubError(404, f"Collection {slug!r} not found.")
        return json.loads(path.read_text(encoding="utf-8"))

    def save(collection: dict[str, Any]) -> None:
        collection["lastUpdated"] = now_iso()
        write_json(storage.collection_path(collection["slug"]), collection)

    @app.post("/api/collections")
    async def create(request: Request) -> JSONResponse:
        user = hub.writer(request)
        payload = await request.json()
        owner, title = payload.get("namespace") or user, str(payload.get("title", "")).strip()
        if not title:
            raise HubError(400, "A collection needs a non-empty title.")
        with hub.collections_lock:
            for existing in storage.iter_collections():
                if existing["owner"] == owner and existing["title"] == title:
                    return JSONResponse(
                        {"error": f"Collection {title!r} already exists", "slug": existing["slug"]},
                        status_code=409,
                    )
            slug_title = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60] or "collection"
            collection = {
                "slug": f"{owner}/{slug_title}-{secrets.token_hex(12)}",
                "title": title,
                "owner": owner,
                "description": payload.get("description"),
                "private": bool(payload.get("private")),
                "items": [],
                "theme": "default",
                "upvotes": 0,
            }
            save(collection)
        return JSONResponse(render(collection))

    @app.get("/api/collections")
    def list_collections(
        owner: str | None = None, item: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        found = [
            c
            for c in storage.iter_collections()
            if (owner is None or c["owner"] == owner)
            and (item is None or any(_item_key(i) == item for i in c["items"]))
        ]
        return [render(c, listed=True) for c in found[:limit]]

    @app.get("/api/collections/{slug:path}")
    def get(slug: str) -> dict[str, Any]:
        return render(load(slug))

    @app.post("/api/collections/{slug:path}/items")
    async def add_item(slug: str, request: Request) -> JSONResponse:
        hub.writer(request)
        payload = await request.json()
        item = payload.get("item") or {}
        with hub.collections_lock:
            collection = load(slug)
            if any(i["id"] == item.get("id") and i["type"] == item.get("type") for i in collection["items"]):
                return JSONResponse(
                    {"error": f"Item {item.get('id')} is already in the collection"}, status_code=409
                )
            new = {
                "_id": secrets.token_hex(12),
                "id": item.get("id"),
                "type": item.get("type"),
                "position": len(collection["items"]),
            }
            if payload.get("note"):
                new["note"] = {"text": payload["note"], "html": payload["note"]}
            collection["items"].append(new)
            save(collection)
        return JSONResponse(render(collection))

    @app.delete("/api/collections/{slug:path}/items/{item_id}")
    def delete_item(slug: str, item_id: str, request: Request) -> dict[str, Any]:
        hub.writer(request)
        with hub.collections_lock:
            collection = load(slug)
            collection["items"] = [i for i in collection["items"] if i["_id"] != item_id]
            save(collection)
        return {}

    @app.delete("/api/collections/{slug:path}")
    def delete(slug: str, request: Request) -> dict[str, Any]:
        hub.writer(request)
        with hub.collections_lock:
            load(slug)
            storage.collection_path(slug).unlink()
        return {}


def _item_key(item: dict[str, Any]) -> str:
    return f"{item['type']}s/{item['id']}"
