"""The FastAPI application: the subset of the Hugging Face Hub HTTP API that huggingface_hub,
transformers, peft and datasets use (see docs/localhub.md for the route list), with the Hub's
permission rules (``localhub.accounts``) and every input checked (``localhub.inputs``).

Handlers doing disk work are plain ``def`` (FastAPI runs them in its thread pool) so one slow
upload never stalls other requests; those that must read a request body are ``async`` and hand the
storage work to the pool."""

from __future__ import annotations

import hmac
import html
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

import yaml
from fastapi import FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from common.io import read_json, write_json
from localhub import inputs
from localhub.accounts import Accounts, Principal
from localhub.config import DEFAULT_MAX_BODY_BYTES
from localhub.faults import FaultConfig, FaultConfigError, FaultInjector, FaultMiddleware
from localhub.inputs import (
    BodyLimit,
    KeepEncodedSlashes,
    header_safe,
    json_body,
    path_param,
    text_field,
)
from localhub.pages import index_page, repo_page
from localhub.storage import (
    REPO_TYPES,
    SHA256,
    SHORT_SHA,
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
from localhub.tree import card_data, list_tree, load_front_matter, paginate, path_info

KINDS = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
BAD_CREDENTIALS = "Invalid credentials in Authorization header"  # huggingface_hub keys its 401 handling on it
LFS_URL_TTL_S = 3600  # signed LFS transfer URLs expire: a leaked one does not grant access for ever
COLLECTION_ITEM_TYPES = ("model", "dataset", "space", "paper", "collection")
Cursor = Annotated[int, Query(ge=0)]
Limit = Annotated[int, Query(ge=1, le=10_000)]


@dataclass
class HubSettings:
    """Who may do what (``accounts``), injected faults, and the API body size limit."""

    accounts: Accounts
    faults: FaultConfig = field(default_factory=FaultConfig)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


@dataclass
class Hub:
    storage: Storage
    settings: HubSettings
    injector: FaultInjector
    collections_lock: threading.Lock = field(default_factory=threading.Lock)

    def principal(self, request: Request) -> Principal | None:
        """Whom a request's token authenticates; 401 for a token that is present but unknown."""
        header = request.headers.get("authorization", "")
        if not header:
            return None
        token = header.removeprefix("Bearer ").strip()
        principal = self.settings.accounts.principal(token)
        if principal is None:
            raise HubError(
                401,
                "the token sent is not one of this local Hub's tokens (see --tokens-file;"
                " the default staging token is in docs/localhub.md)",
                "Unauthorized",
            )
        return principal

    def writer(self, request: Request) -> Principal:
        """The principal of a write: 401 without a token, 403 with a read-only one."""
        principal = self.principal(request)
        if principal is None:
            raise HubError(
                401,
                "writes need a token: pass token=... to HfApi or set HF_TOKEN to one of the"
                " server's tokens (see docs/localhub.md)",
                "Unauthorized",
            )
        if not principal.can_write:
            raise HubError(403, f"The token of user {principal.user!r} is read-only: use a write token.")
        return principal

    @staticmethod
    def may_write(principal: Principal, namespace: str) -> None:
        if not principal.member_of(namespace):
            orgs = ", ".join(sorted(principal.orgs)) or "none"
            raise HubError(
                403,
                f"You cannot write to namespace {namespace!r}: user {principal.user!r} may write only"
                f" to its own namespace and its organisations' ({orgs}).",
            )

    @staticmethod
    def may_see(principal: Principal | None, namespace: str, private: bool) -> bool:
        return not private or (principal is not None and principal.member_of(namespace))

    def readable_repo(self, request: Request, kind: str, repo_id: str) -> Repo:
        """The repo if this request may read it; a private repo of someone else answers exactly as
        a missing one (404), so its name does not leak."""
        repo_type = _repo_type(kind)
        principal = self.principal(request)
        try:
            repo = self.storage.get_repo(repo_type, repo_id)
        except HubError as err:
            if err.status == 404:
                raise _repo_not_found(repo_type, repo_id) from None
            raise
        if not self.may_see(principal, repo.id.split("/")[0], repo.private):
            raise _repo_not_found(repo_type, repo_id)
        return repo

    def writable_repo(self, request: Request, kind: str, repo_id: str) -> tuple[Principal, Repo]:
        principal = self.writer(request)
        repo = self.readable_repo(request, kind, repo_id)
        self.may_write(principal, repo.id.split("/")[0])
        return principal, repo

    def sign(self, value: str) -> str:
        return hmac.new(self.storage.secret, value.encode(), "sha256").hexdigest()

    def signed_query(self, value: str, **params: Any) -> str:
        expires = int(time.time()) + LFS_URL_TTL_S
        return urlencode({**params, "exp": expires, "sig": self.sign(f"{value}:{expires}")})

    def check_signature(self, value: str, expires: int, sig: str) -> None:
        expected = self.sign(f"{value}:{expires}").encode()
        if expires < time.time() or not hmac.compare_digest(sig.encode("utf-8", "replace"), expected):
            raise HubError(403, "LFS URL signature is invalid or expired: ask the batch API for a fresh URL.")


def _repo_not_found(repo_type: str, repo_id: str) -> HubError:
    return HubError(
        404,
        f"Repository {repo_type}s/{repo_id} not found (or it is private and your token may not read it).",
        "RepoNotFound",
    )


def _repo_type(kind: str) -> str:
    if kind not in KINDS:
        raise HubError(404, f"Unknown repo kind {kind[:50]!r}: expected models, datasets or spaces.")
    return KINDS[kind]


def _type_of(payload: dict[str, Any]) -> str:
    repo_type = text_field(payload, "type", "model")
    if repo_type not in REPO_TYPES:
        raise HubError(400, f"Invalid repo type {repo_type[:50]!r}: expected one of {', '.join(REPO_TYPES)}.")
    return repo_type


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _error_response(exc: HubError) -> JSONResponse:
    headers = {"X-Error-Message": BAD_CREDENTIALS if exc.status == 401 else header_safe(exc.message)}
    if exc.code:
        headers["X-Error-Code"] = exc.code
    return JSONResponse({"error": exc.message}, status_code=exc.status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    problems = [
        f"{'.'.join(str(part) for part in error.get('loc', ())[1:]) or 'request'}: {error.get('msg', 'invalid')}"
        for error in exc.errors()
    ]
    return "Invalid request parameter(s): " + "; ".join(problems)


def create_app(storage: Storage, settings: HubSettings) -> Any:
    """The ASGI app: FastAPI routes behind the URL, body-limit and fault middlewares."""
    hub = Hub(storage, settings, FaultInjector(settings.faults))
    # No interactive API docs: their page loads its scripts from a CDN (blank offline); docs/localhub.md
    # lists the routes.
    app = FastAPI(title="localhub", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.hub = hub

    @app.exception_handler(HubError)
    async def _hub_error(request: Request, exc: HubError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error_response(HubError(400, _validation_message(exc)))

    # Order matters: /api/collections/... and /api/whoami-v2 must win over /api/{kind}/{ns}/{name},
    # and the HTML pages (/{ns}/{name}) come last.
    for register in (
        _admin_routes,
        _account_routes,
        _collection_routes,
        _repo_routes,
        _commit_routes,
        _file_routes,
        _lfs_routes,
        _page_routes,
    ):
        register(app, hub)
    return FaultMiddleware(KeepEncodedSlashes(BodyLimit(app, settings.max_body_bytes)), hub.injector)


# ---- admin, health, pages -----------------------------------------------------------------------
def _admin_routes(app: FastAPI, hub: Hub) -> None:
    def require_admin(request: Request) -> None:
        admin = hub.settings.accounts.admin_token
        if admin is None:
            raise HubError(403, "the /_admin routes are disabled: start the server with an admin token")
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not secrets.compare_digest(token.encode("utf-8", "replace"), admin.encode()):
            raise HubError(401, "admin routes need the admin token (--admin-token)", "Unauthorized")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/_admin/faults")
    def get_faults(request: Request) -> dict[str, Any]:
        require_admin(request)
        return {"config": hub.injector.config.to_obj(), "counts": hub.injector.counts()}

    @app.put("/_admin/faults")
    async def put_faults(request: Request) -> dict[str, Any]:
        require_admin(request)
        payload = await json_body(request, optional=True)
        try:
            config = FaultConfig.from_obj(payload or None)
        except (FaultConfigError, TypeError, ValueError) as err:
            raise HubError(400, f"invalid fault config: {err}") from err
        hub.injector.configure(config)
        return {"config": config.to_obj(), "counts": hub.injector.counts()}


def _page_routes(app: FastAPI, hub: Hub) -> None:
    @app.get("/", response_class=HTMLResponse)
    def index(request: Request, page: Annotated[int, Query(ge=1)] = 1) -> HTMLResponse:
        principal = hub.principal(request)
        repos = [
            r
            for t in KINDS.values()
            for r in hub.storage.iter_repos(t)
            if hub.may_see(principal, r.id.split("/")[0], r.private)
        ]
        return _html(index_page(repos, _base(request), page))

    for prefix, kind in (("/datasets", "datasets"), ("/spaces", "spaces"), ("", "models")):
        _repo_page_routes(app, hub, prefix, kind)


def _repo_page_routes(app: FastAPI, hub: Hub, prefix: str, kind: str) -> None:
    def page(ns: str, name: str, request: Request, rev: str = "main", path: str = "") -> HTMLResponse:
        repo = hub.readable_repo(request, kind, f"{ns}/{name}")
        revision, folder = path_param(rev), path_param(path).strip("/")
        sha = hub.storage.resolve(repo, revision)
        items = list_tree(hub.storage, sha, folder, recursive=False, expand=False)
        return _html(repo_page(hub.storage, repo, revision, sha, folder, items))

    base = prefix + "/{ns}/{name}"
    app.add_api_route(base, page, methods=["GET"], response_class=HTMLResponse)
    app.add_api_route(base + "/tree/{rev}", page, methods=["GET"], response_class=HTMLResponse)
    app.add_api_route(base + "/tree/{rev}/{path:path}", page, methods=["GET"], response_class=HTMLResponse)


def _html(body: str) -> HTMLResponse:
    # A card is untrusted: it is escaped when rendered, and the page may not run any script at all.
    policy = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:"
    return HTMLResponse(
        body, headers={"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff"}
    )


# ---- account, repos -----------------------------------------------------------------------------
def _account_routes(app: FastAPI, hub: Hub) -> None:
    @app.get("/api/whoami-v2")
    def whoami(request: Request) -> dict[str, Any]:
        principal = hub.principal(request)
        if principal is None:
            raise HubError(401, "whoami needs a token", "Unauthorized")
        return {
            "type": "user",
            "id": hub.sign(principal.user)[:24],
            "name": principal.user,
            "fullname": principal.user,
            "email": None,
            "emailVerified": False,
            "isPro": False,
            "orgs": [
                {"type": "org", "name": org, "fullname": org, "id": hub.sign(org)[:24], "roleInOrg": "write"}
                for org in sorted(principal.orgs)
            ],
            "auth": {
                "type": "access_token",
                "accessToken": {"displayName": "localhub", "role": principal.role},
            },
        }

    @app.post("/api/validate-yaml")
    async def validate_yaml(request: Request) -> JSONResponse:
        content = text_field(await json_body(request), "content", "")
        errors: list[dict[str, str]] = []
        try:
            meta = load_front_matter(content)
            if meta is not None and not isinstance(meta, dict):
                errors.append({"message": "the YAML front matter must be a mapping"})
        except yaml.YAMLError as err:
            errors.append({"message": f"invalid YAML front matter: {err}"})
        body = {"errors": errors, "warnings": []}
        return JSONResponse(body, status_code=400 if errors else 200)


def _repo_routes(app: FastAPI, hub: Hub) -> None:
    @app.post("/api/repos/create")
    async def create_repo(request: Request) -> JSONResponse:
        principal = hub.writer(request)
        payload = await json_body(request)
        repo_type = _type_of(payload)
        namespace = text_field(payload, "organization") or principal.user
        repo_id = f"{namespace}/{text_field(payload, 'name', required=True)}"
        visibility = text_field(payload, "visibility")
        if visibility not in (None, "public", "private"):
            raise HubError(400, f"Field 'visibility' must be 'public' or 'private', not {visibility[:50]!r}.")
        private = visibility == "private" or bool(inputs.field(payload, "private", bool, False))
        sdk = text_field(payload, "sdk")
        hub.storage.repo_dir(repo_type, repo_id)  # 400 for an invalid name before any permission talk
        hub.may_write(principal, namespace)
        url = f"{_base(request)}/{URL_PREFIX[repo_type]}{repo_id}"
        try:
            await run_in_threadpool(hub.storage.create_repo, repo_type, repo_id, principal.user, private, sdk)
        except HubError as err:
            if err.status == 409:
                return JSONResponse(
                    {"error": err.message, "url": url},
                    status_code=409,
                    headers={"X-Error-Message": header_safe(err.message)},
                )
            raise
        return JSONResponse({"url": url, "name": repo_id, "id": repo_id})

    @app.delete("/api/repos/delete")
    async def delete_repo(request: Request) -> dict[str, Any]:
        principal = hub.writer(request)
        payload = await json_body(request)
        repo_type = _type_of(payload)
        namespace = text_field(payload, "organization") or principal.user
        repo_id = f"{namespace}/{text_field(payload, 'name', required=True)}"
        hub.writable_repo(request, f"{repo_type}s", repo_id)
        await run_in_threadpool(hub.storage.delete_repo, repo_type, repo_id)
        return {}

    @app.post("/api/repos/move")
    async def move_repo(request: Request) -> dict[str, Any]:
        principal = hub.writer(request)
        payload = await json_body(request)
        repo_type = _type_of(payload)
        from_id = text_field(payload, "fromRepo", required=True)
        to_id = text_field(payload, "toRepo", required=True)
        hub.storage.repo_dir(repo_type, to_id)
        hub.writable_repo(request, f"{repo_type}s", from_id)
        hub.may_write(principal, to_id.split("/")[0])
        await run_in_threadpool(hub.storage.move_repo, repo_type, from_id, to_id)
        return {}

    @app.put("/api/{kind}/{ns}/{name}/settings")
    async def settings(kind: str, ns: str, name: str, request: Request) -> dict[str, Any]:
        _, repo = hub.writable_repo(request, kind, f"{ns}/{name}")
        payload = await json_body(request)
        private = inputs.field(payload, "private", bool)
        visibility = text_field(payload, "visibility")
        if visibility not in (None, "public", "private"):
            raise HubError(400, f"Field 'visibility' must be 'public' or 'private', not {visibility[:50]!r}.")
        with hub.storage.lock(repo.type, repo.id):
            repo = hub.storage.get_repo(repo.type, repo.id)
            if private is not None or visibility is not None:
                repo.private = private if private is not None else visibility == "private"
                hub.storage.save_repo(repo)
        return {}

    @app.get("/api/{kind}")
    def list_repos(
        kind: str,
        request: Request,
        author: str | None = None,
        search: str | None = None,
        limit: Annotated[int | None, Query(ge=1)] = None,
    ) -> list[dict[str, Any]]:
        repo_type = _repo_type(kind)
        principal = hub.principal(request)
        repos = [
            r
            for r in hub.storage.iter_repos(repo_type)
            if hub.may_see(principal, r.id.split("/")[0], r.private)
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
        return _repo_info(hub, request, kind, f"{ns}/{name}", path_param(rev), blobs)

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
        cursor: Cursor = 0,
        limit: Limit = 50,
    ) -> list[dict[str, Any]]:
        repo = hub.readable_repo(request, kind, f"{ns}/{name}")
        history = list(hub.storage.history(hub.storage.resolve(repo, path_param(rev))))
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
    def xet_token(kind: str, ns: str, name: str, token_type: str, rev: str, request: Request) -> None:
        hub.readable_repo(request, kind, f"{ns}/{name}")
        # huggingface_hub uses Xet whenever hf_xet is installed: say what to do instead of a bare 404
        # (a 4xx: no request makes this server answer 5xx).
        raise HubError(
            400,
            "The local Hub does not speak the Xet protocol: set HF_HUB_DISABLE_XET=1 in the"
            " environment before huggingface_hub is imported, so it uses the LFS protocol.",
        )

    @app.post("/api/{kind}/{ns}/{name}/preupload/{rev}")
    async def preupload(kind: str, ns: str, name: str, rev: str, request: Request) -> dict[str, Any]:
        _, repo = hub.writable_repo(request, kind, f"{ns}/{name}")
        files = inputs.list_of_objects(await json_body(request), "files")
        commit = hub.storage.get_commit(hub.storage.resolve(repo, path_param(rev)))
        return {"files": [_upload_mode(commit, f) for f in files], "commitOid": commit.id}

    @app.post("/api/{kind}/{ns}/{name}/commit/{rev}")
    async def commit(kind: str, ns: str, name: str, rev: str, request: Request) -> dict[str, Any]:
        principal, repo = hub.writable_repo(request, kind, f"{ns}/{name}")
        if inputs.flag(request.query_params.get("create_pr")):
            raise HubError(400, "create_pr is not supported by the local Hub: commit to a branch instead.")
        lines = inputs.ndjson_lines(await request.body())
        header, operations = _parse_commit(hub.storage, repo, lines)
        new = await run_in_threadpool(
            hub.storage.commit,
            repo.type,
            repo.id,
            path_param(rev),
            operations,
            text_field(header, "summary") or "update",
            text_field(header, "description", ""),
            principal.user,
            _parent_commit(header),
        )
        return {
            "success": True,
            "commitOid": new.id,
            "hookOutput": "",
            "commitUrl": f"{_base(request)}/{URL_PREFIX[repo.type]}{repo.id}/commit/{new.id}",
        }

    async def create_ref(repo: Repo, ref_kind: str, ref: str, revision: str) -> dict[str, Any]:
        target = hub.storage.resolve(repo, revision)
        await run_in_threadpool(hub.storage.set_ref, repo.type, repo.id, ref_kind, ref, target)
        return {}

    @app.post("/api/{kind}/{ns}/{name}/branch/{branch}")
    async def create_branch(kind: str, ns: str, name: str, branch: str, request: Request) -> dict[str, Any]:
        _, repo = hub.writable_repo(request, kind, f"{ns}/{name}")
        start = text_field(await json_body(request, optional=True), "startingPoint") or "main"
        return await create_ref(repo, "branch", path_param(branch), start)

    @app.post("/api/{kind}/{ns}/{name}/tag/{rev}")
    async def create_tag(kind: str, ns: str, name: str, rev: str, request: Request) -> dict[str, Any]:
        _, repo = hub.writable_repo(request, kind, f"{ns}/{name}")
        payload = await json_body(request)
        tag = text_field(payload, "tag", required=True)
        text_field(payload, "message")  # checked, not stored: tags carry no message here
        return await create_ref(repo, "tag", tag, path_param(rev))

    for ref_kind in ("branch", "tag"):
        _delete_ref_route(app, hub, ref_kind)


def _delete_ref_route(app: FastAPI, hub: Hub, ref_kind: str) -> None:
    def delete_ref(kind: str, ns: str, name: str, ref: str, request: Request) -> dict[str, Any]:
        _, repo = hub.writable_repo(request, kind, f"{ns}/{name}")
        hub.storage.set_ref(repo.type, repo.id, ref_kind, path_param(ref), None)
        return {}

    app.add_api_route(f"/api/{{kind}}/{{ns}}/{{name}}/{ref_kind}/{{ref}}", delete_ref, methods=["DELETE"])


def _parent_commit(header: dict[str, Any]) -> str | None:
    parent = text_field(header, "parentCommit")
    if parent is not None and not SHORT_SHA.match(parent):
        raise HubError(400, f"parentCommit {parent[:60]!r} is not a commit sha (5 to 40 hex digits).")
    return None if parent is None else parent.lower()


def _upload_mode(commit: Commit, file: dict[str, Any]) -> dict[str, Any]:
    path = text_field(file, "path", required=True)
    size = inputs.size_field(file, "size") or 0
    lfs = wants_lfs(path, size, inputs.base64_field(file, "sample", f"file {path[:100]!r}"))
    existing = commit.tree.get(path)
    oid = None if existing is None else (existing.sha256 if existing.lfs else existing.oid)
    return {"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}


def _parse_commit(
    storage: Storage, repo: Repo, lines: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[Operation]]:
    """NDJSON commit payload -> (header, operations), all checked; nothing is written here."""
    if not lines or lines[0].get("key") != "header":
        raise HubError(400, "A commit payload starts with a {'key': 'header', ...} line.")
    header = inputs.object_field(lines[0], "value")
    objects = storage.repo_objects(repo)
    operations = []
    for number, line in enumerate(lines[1:], start=2):
        key, value = line.get("key"), inputs.object_field(line, "value")
        raw_path = text_field(value, "path", required=True)
        path = check_path(raw_path.rstrip("/") if key == "deletedFolder" else raw_path)
        if key == "file":
            encoding = text_field(value, "encoding")
            data = (
                inputs.base64_field(value, "content", f"file {path!r}")
                if encoding == "base64"
                else text_field(value, "content", "").encode()
            )
            operations.append(Operation("add", path, Entry.of(data, lfs=False), data))
        elif key == "lfsFile":
            operations.append(Operation("add", path, _lfs_entry(storage, objects, path, value)))
        elif key in ("deletedFile", "deletedFolder"):
            operations.append(Operation("delete_file" if key == "deletedFile" else "delete_folder", path))
        else:
            raise HubError(
                400,
                f"Commit payload line {number}: unsupported operation {str(key)[:50]!r} (supported:"
                " file, lfsFile, deletedFile, deletedFolder).",
            )
    return header, operations


def _lfs_entry(storage: Storage, objects: frozenset[str], path: str, value: dict[str, Any]) -> Entry:
    oid = text_field(value, "oid", required=True)
    if text_field(value, "algo", "sha256") != "sha256" or not SHA256.match(oid):
        raise HubError(
            400, f"LFS file {path!r}: oid {oid[:100]!r} is not a sha256 (64 lower-case hex digits)."
        )
    if oid not in objects or not storage.has_blob(oid):
        raise HubError(
            400,
            f"LFS file {path!r} points to object {oid} that was never uploaded to this repo: upload"
            " it through the LFS batch API (preupload_lfs_files) before committing.",
        )
    size = storage.blob_path(oid).stat().st_size
    announced = inputs.size_field(value, "size")
    if announced is not None and announced != size:
        raise HubError(400, f"LFS file {path!r}: announced size {announced} != stored size {size}.")
    return Entry.for_blob(oid, size, lfs=True)


# ---- trees, paths-info, resolve -----------------------------------------------------------------
def _file_routes(app: FastAPI, hub: Hub) -> None:
    def tree(
        kind: str,
        ns: str,
        name: str,
        rev: str,
        request: Request,
        response: Response,
        path: str = "",
        recursive: bool = False,
        expand: bool = False,
        cursor: Cursor = 0,
        limit: Limit = 1000,
    ) -> list[dict[str, Any]]:
        repo = hub.readable_repo(request, kind, f"{ns}/{name}")
        head = hub.storage.resolve(repo, path_param(rev))
        items = list_tree(hub.storage, head, path_param(path).strip("/"), recursive, expand)
        return paginate(items, request, response, cursor, limit)

    app.add_api_route("/api/{kind}/{ns}/{name}/tree/{rev}", tree, methods=["GET"])
    app.add_api_route("/api/{kind}/{ns}/{name}/tree/{rev}/{path:path}", tree, methods=["GET"])

    @app.post("/api/{kind}/{ns}/{name}/paths-info/{rev}")
    async def paths_info(kind: str, ns: str, name: str, rev: str, request: Request) -> list[dict[str, Any]]:
        repo = hub.readable_repo(request, kind, f"{ns}/{name}")
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            raise HubError(400, f"paths-info takes a form (paths=...&expand=...), not {content_type[:80]!r}.")
        form = await request.form()
        values = form.getlist("paths")
        if any(isinstance(p, UploadFile) for p in values):
            raise HubError(400, "Form field 'paths' must be text, not a file upload.")
        expand = inputs.flag(form.get("expand", ""))
        head = hub.storage.resolve(repo, path_param(rev))
        return await run_in_threadpool(path_info, hub.storage, head, [str(p) for p in values], expand)

    for prefix, kind in (("/datasets", "datasets"), ("/spaces", "spaces"), ("", "models")):
        _resolve_route(app, hub, prefix, kind)


def _resolve_route(app: FastAPI, hub: Hub, prefix: str, kind: str) -> None:
    def resolve(ns: str, name: str, rev: str, path: str, request: Request) -> Response:
        repo = hub.readable_repo(request, kind, f"{ns}/{name}")
        revision, file_path = path_param(rev), path_param(path)
        sha = hub.storage.resolve(repo, revision)
        entry = hub.storage.get_commit(sha).tree.get(file_path)
        if entry is None:
            exc = HubError(
                404, f"Entry {file_path[:200]!r} not found in {repo.id} at {revision[:100]}.", "EntryNotFound"
            )
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
    """Objects are scoped to repos: a repo hands out (and accepts in commits) only the objects its
    history references or that were uploaded to it; an upload proves possession of the content."""
    for prefix, kind in (("/datasets", "datasets"), ("/spaces", "spaces"), ("", "models")):
        _lfs_batch_route(app, hub, prefix, kind)

    def signed_repo(repo_key: str, action: str, exp: int, sig: str, extra: str = "") -> Repo:
        hub.check_signature(f"{action}:{repo_key}:{extra}", exp, sig)
        kind, _, repo_id = repo_key.partition("/")
        return hub.storage.get_repo(_repo_type(kind), repo_id)

    @app.put("/_lfs/upload/{oid}")
    async def upload(
        oid: str, request: Request, size: Annotated[int, Query(ge=0)], repo: str, exp: int, sig: str
    ) -> Response:
        target = signed_repo(repo, "upload", exp, sig, f"{oid}:{size}")
        sink = hub.storage.new_upload(max_size=size)
        try:
            async for chunk in request.stream():
                sink.write(chunk)
            await run_in_threadpool(sink.finish, oid, size)
            hub.storage.stage_object(target, oid)
        finally:
            sink.discard()
        return Response(status_code=200)

    @app.post("/_lfs/verify")
    async def verify(request: Request, repo: str, exp: int, sig: str) -> dict[str, Any]:
        target = signed_repo(repo, "verify", exp, sig)
        payload = await json_body(request)
        oid = text_field(payload, "oid", required=True)
        size = inputs.size_field(payload, "size")
        if (
            not SHA256.match(oid)
            or oid not in hub.storage.repo_objects(target)
            or not hub.storage.has_blob(oid, size)
        ):
            raise HubError(404, f"LFS object {oid[:100]} with size {size} is not stored for {target.id}.")
        return {}

    @app.get("/_lfs/objects/{oid}")
    def download(oid: str, exp: int, sig: str) -> Response:
        hub.check_signature(f"download:{oid}", exp, sig)
        if not hub.storage.has_blob(oid):
            raise HubError(404, f"LFS object {oid[:100]} not found.")
        return FileResponse(hub.storage.blob_path(oid), media_type="application/octet-stream")


def _lfs_batch_route(app: FastAPI, hub: Hub, prefix: str, kind: str) -> None:
    async def batch(ns: str, name: str, request: Request) -> JSONResponse:
        repo_id = f"{ns}/{name.removesuffix('.git')}"
        payload = await json_body(request)
        operation = text_field(payload, "operation", required=True)
        if operation not in ("upload", "download"):
            raise HubError(400, f"Field 'operation' must be 'upload' or 'download', not {operation[:50]!r}.")
        if operation == "upload":
            _, repo = hub.writable_repo(request, kind, repo_id)
        else:
            repo = hub.readable_repo(request, kind, repo_id)
        wanted = [_lfs_request(obj) for obj in inputs.list_of_objects(payload, "objects")]
        scope = hub.storage.repo_objects(repo)
        base, repo_key = _base(request), f"{kind}/{repo.id}"
        objects = [_lfs_object(hub, base, repo_key, scope, oid, size, operation) for oid, size in wanted]
        return JSONResponse(
            {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
            media_type="application/vnd.git-lfs+json",
        )

    app.add_api_route(prefix + "/{ns}/{name}/info/lfs/objects/batch", batch, methods=["POST"])


def _lfs_request(obj: dict[str, Any]) -> tuple[str, int]:
    oid = text_field(obj, "oid", required=True)
    if not SHA256.match(oid):
        raise HubError(400, f"LFS object oid {oid[:100]!r} is not a sha256 (64 lower-case hex digits).")
    return oid, inputs.size_field(obj, "size", required=True)


def _lfs_object(
    hub: Hub, base: str, repo_key: str, scope: frozenset[str], oid: str, size: int, operation: str
) -> dict[str, Any]:
    out: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
    present = oid in scope and hub.storage.has_blob(oid, size)
    if operation == "upload" and not present:
        upload_query = hub.signed_query(f"upload:{repo_key}:{oid}:{size}", size=size, repo=repo_key)
        verify_query = hub.signed_query(f"verify:{repo_key}:", repo=repo_key)
        out["actions"] = {
            "upload": {"href": f"{base}/_lfs/upload/{oid}?{upload_query}", "header": {}},
            "verify": {"href": f"{base}/_lfs/verify?{verify_query}", "header": {}},
        }
    elif operation == "download" and present:
        query = hub.signed_query(f"download:{oid}")
        out["actions"] = {"download": {"href": f"{base}/_lfs/objects/{oid}?{query}", "header": {}}}
    elif operation == "download":
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

    def visible(request: Request, collection: dict[str, Any]) -> bool:
        return hub.may_see(hub.principal(request), collection["owner"], bool(collection.get("private")))

    def load(request: Request, slug: str) -> dict[str, Any]:
        """A collection this request may read; a private one of someone else is 404, like a missing one."""
        path = storage.collection_path(slug)
        collection = read_json(path) if path.exists() else None
        if collection is None or not visible(request, collection):
            raise HubError(404, f"Collection {slug[:200]!r} not found.")
        return collection

    def load_writable(request: Request, slug: str) -> dict[str, Any]:
        principal = hub.writer(request)
        collection = load(request, slug)
        hub.may_write(principal, collection["owner"])
        return collection

    def save(collection: dict[str, Any]) -> None:
        collection["lastUpdated"] = now_iso()
        write_json(storage.collection_path(collection["slug"]), collection)

    @app.post("/api/collections")
    async def create(request: Request) -> JSONResponse:
        principal = hub.writer(request)
        payload = await json_body(request)
        owner = text_field(payload, "namespace") or principal.user
        title = text_field(payload, "title", "").strip()
        description = text_field(payload, "description")
        private = inputs.field(payload, "private", bool, False)
        if not title:
            raise HubError(400, "A collection needs a non-empty title.")
        hub.may_write(principal, owner)
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
                "description": description,
                "private": private,
                "items": [],
                "theme": "default",
                "upvotes": 0,
            }
            save(collection)
        return JSONResponse(render(collection))

    @app.get("/api/collections")
    def list_collections(
        request: Request,
        owner: str | None = None,
        item: str | None = None,
        limit: Annotated[int | None, Query(ge=1)] = None,
    ) -> list[dict[str, Any]]:
        found = [
            c
            for c in storage.iter_collections()
            if visible(request, c)
            and (owner is None or c["owner"] == owner)
            and (item is None or any(_item_key(i) == item for i in c["items"]))
        ]
        return [render(c, listed=True) for c in found[:limit]]

    @app.get("/api/collections/{slug:path}")
    def get(slug: str, request: Request) -> dict[str, Any]:
        return render(load(request, slug))

    @app.post("/api/collections/{slug:path}/items")
    async def add_item(slug: str, request: Request) -> JSONResponse:
        load_writable(request, slug)
        payload = await json_body(request)
        item = inputs.object_field(payload, "item")
        item_id = text_field(item, "id", required=True)
        item_type = text_field(item, "type", required=True)
        if item_type not in COLLECTION_ITEM_TYPES:
            raise HubError(
                400, f"Item type {item_type[:50]!r} is not one of {', '.join(COLLECTION_ITEM_TYPES)}."
            )
        note = text_field(payload, "note")
        with hub.collections_lock:
            collection = load(request, slug)
            if any(i["id"] == item_id and i["type"] == item_type for i in collection["items"]):
                return JSONResponse(
                    {"error": f"Item {item_id} is already in the collection"}, status_code=409
                )
            new = {
                "_id": secrets.token_hex(12),
                "id": item_id,
                "type": item_type,
                "position": len(collection["items"]),
            }
            if note:
                new["note"] = {"text": note, "html": html.escape(note)}
            collection["items"].append(new)
            save(collection)
        return JSONResponse(render(collection))

    @app.delete("/api/collections/{slug:path}/items/{item_id}")
    def delete_item(slug: str, item_id: str, request: Request) -> dict[str, Any]:
        load_writable(request, slug)
        with hub.collections_lock:
            collection = load(request, slug)
            collection["items"] = [i for i in collection["items"] if i["_id"] != item_id]
            save(collection)
        return {}

    @app.delete("/api/collections/{slug:path}")
    def delete(slug: str, request: Request) -> dict[str, Any]:
        load_writable(request, slug)
        with hub.collections_lock:
            storage.collection_path(slug).unlink(missing_ok=True)
        return {}


def _item_key(item: dict[str, Any]) -> str:
    return f"{item['type']}s/{item['id']}"
