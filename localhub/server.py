"""The FastAPI application: the subset of the Hugging Face Hub HTTP API that huggingface_hub,
transformers, peft and datasets use (see docs/localhub.md for the route list), with the Hub's
permission rules (``localhub.accounts``) and every input checked (``localhub.inputs``).

Handlers doing disk work are plain ``def`` (FastAPI runs them in its thread pool) so one slow
upload never stalls other requests; those that must read a request body are ``async`` and hand the
storage work to the pool."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

import yaml
from fastapi import FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from localhub.collection_routes import collection_routes, readable_collection
from localhub.faults import FaultConfig, FaultConfigError, FaultInjector, FaultMiddleware
from localhub.hub import (
    KINDS,
    URL_PREFIX,
    Hub,
    HubSettings,
    base_url,
    error_response,
    repo_type_of,
    type_field,
    validation_message,
)
from localhub.inputs import (
    BodyLimit,
    KeepEncodedSlashes,
    base64_field,
    flag,
    header_safe,
    json_body,
    list_of_objects,
    ndjson_lines,
    object_field,
    path_param,
    size_field,
    text_field,
    typed_field,
)
from localhub.lfs_routes import lfs_routes
from localhub.listing import PAGE_SIZE, check_expand, list_entry
from localhub.pages import collection_page, index_page, repo_page
from localhub.storage import (
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
    wants_lfs,
)
from localhub.tree import card_data, list_tree, load_front_matter, paginate, path_info

__all__ = ["Hub", "HubSettings", "create_app"]
Cursor = Annotated[int, Query(ge=0)]
Limit = Annotated[int, Query(ge=1, le=10_000)]


def create_app(storage: Storage, settings: HubSettings) -> Any:
    """The ASGI app: FastAPI routes behind the URL, body-limit and fault middlewares."""
    hub = Hub(storage, settings, FaultInjector(settings.faults))
    # No interactive API docs: their page loads its scripts from a CDN (blank offline); docs/localhub.md
    # lists the routes.
    app = FastAPI(title="localhub", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.hub = hub

    @app.exception_handler(HubError)
    async def _hub_error(request: Request, exc: HubError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(HubError(400, validation_message(exc)))

    # Order matters: /api/collections/... and /api/whoami-v2 must win over /api/{kind}/{ns}/{name},
    # and the HTML pages (/{ns}/{name}) come last.
    for register in (
        _admin_routes,
        _account_routes,
        collection_routes,
        _repo_routes,
        _commit_routes,
        _file_routes,
        lfs_routes,
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
        return {"status": "ok"}  # no storage root: local paths are nobody's business on the network

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
        return _html(index_page(repos, base_url(request), page))

    @app.get("/collections/{slug:path}", response_class=HTMLResponse)
    def collection(slug: str, request: Request) -> HTMLResponse:
        return _html(collection_page(readable_collection(hub, request, slug)))

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
        repo_type = type_field(payload)
        namespace = text_field(payload, "organization") or principal.user
        repo_id = f"{namespace}/{text_field(payload, 'name', required=True)}"
        visibility = text_field(payload, "visibility")
        if visibility not in (None, "public", "private"):
            raise HubError(400, f"Field 'visibility' must be 'public' or 'private', not {visibility[:50]!r}.")
        private = visibility == "private" or bool(typed_field(payload, "private", bool, False))
        sdk = text_field(payload, "sdk")
        hub.storage.repo_dir(repo_type, repo_id)  # 400 for an invalid name before any permission talk
        hub.may_write(principal, namespace)
        url = f"{base_url(request)}/{URL_PREFIX[repo_type]}{repo_id}"
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
        repo_type = type_field(payload)
        namespace = text_field(payload, "organization") or principal.user
        repo_id = f"{namespace}/{text_field(payload, 'name', required=True)}"
        hub.writable_repo(request, f"{repo_type}s", repo_id)
        await run_in_threadpool(hub.storage.delete_repo, repo_type, repo_id)
        return {}

    @app.post("/api/repos/move")
    async def move_repo(request: Request) -> dict[str, Any]:
        principal = hub.writer(request)
        payload = await json_body(request)
        repo_type = type_field(payload)
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
        private = typed_field(payload, "private", bool)
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
        response: Response,
        author: str | None = None,
        search: str | None = None,
        limit: Annotated[int | None, Query(ge=1)] = None,
        cursor: Cursor = 0,
        expand: Annotated[list[str] | None, Query()] = None,
        expand_brackets: Annotated[list[str] | None, Query(alias="expand[]")] = None,
    ) -> list[dict[str, Any]]:
        repo_type = repo_type_of(kind)
        fields = [*(expand or []), *(expand_brackets or [])]
        check_expand(fields)
        principal = hub.principal(request)
        repos = [
            r
            for r in hub.storage.iter_repos(repo_type)
            if hub.may_see(principal, r.id.split("/")[0], r.private)
            and (author is None or r.id.split("/")[0] == author)
            and (search is None or search.lower() in r.id.lower())
        ]
        page = paginate(repos, request, response, cursor, min(limit or PAGE_SIZE, PAGE_SIZE))
        return [list_entry(hub.storage, r, hub.sign(r.id)[:24], fields) for r in page]

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
        files = list_of_objects(await json_body(request), "files")
        commit = hub.storage.get_commit(hub.storage.resolve(repo, path_param(rev)))
        return {"files": [_upload_mode(commit, f) for f in files], "commitOid": commit.id}

    @app.post("/api/{kind}/{ns}/{name}/commit/{rev}")
    async def commit(kind: str, ns: str, name: str, rev: str, request: Request) -> dict[str, Any]:
        principal, repo = hub.writable_repo(request, kind, f"{ns}/{name}")
        if flag(request.query_params.get("create_pr")):
            raise HubError(400, "create_pr is not supported by the local Hub: commit to a branch instead.")
        lines = ndjson_lines(await request.body())
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
            "commitUrl": f"{base_url(request)}/{URL_PREFIX[repo.type]}{repo.id}/commit/{new.id}",
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
    size = size_field(file, "size") or 0
    lfs = wants_lfs(path, size, base64_field(file, "sample", f"file {path[:100]!r}"))
    existing = commit.tree.get(path)
    oid = None if existing is None else (existing.sha256 if existing.lfs else existing.oid)
    return {"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}


def _parse_commit(
    storage: Storage, repo: Repo, lines: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[Operation]]:
    """NDJSON commit payload -> (header, operations), all checked; nothing is written here."""
    if not lines or lines[0].get("key") != "header":
        raise HubError(400, "A commit payload starts with a {'key': 'header', ...} line.")
    header = object_field(lines[0], "value")
    objects = storage.repo_objects(repo)
    operations = []
    for number, line in enumerate(lines[1:], start=2):
        key, value = line.get("key"), object_field(line, "value")
        raw_path = text_field(value, "path", required=True)
        path = check_path(raw_path.rstrip("/") if key == "deletedFolder" else raw_path)
        if key == "file":
            encoding = text_field(value, "encoding")
            data = (
                base64_field(value, "content", f"file {path!r}")
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
    announced = size_field(value, "size")
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
        expand = flag(form.get("expand", ""))
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
            response = error_response(exc)
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
