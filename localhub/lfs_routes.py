"""The LFS batch API and the signed transfer URLs it hands out. Objects are scoped to repos: a repo
hands out (and accepts in commits) only the objects its history references or that were uploaded to
it; an upload proves possession of the content."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool

from localhub.hub import Hub, base_url, repo_type_of
from localhub.inputs import json_body, list_of_objects, size_field, text_field
from localhub.storage import SHA256, HubError, Repo


def lfs_routes(app: FastAPI, hub: Hub) -> None:
    """Objects are scoped to repos: a repo hands out (and accepts in commits) only the objects its
    history references or that were uploaded to it; an upload proves possession of the content."""
    for prefix, kind in (("/datasets", "datasets"), ("/spaces", "spaces"), ("", "models")):
        _lfs_batch_route(app, hub, prefix, kind)

    def signed_repo(repo_key: str, action: str, exp: int, sig: str, extra: str = "") -> Repo:
        hub.check_signature(f"{action}:{repo_key}:{extra}", exp, sig)
        kind, _, repo_id = repo_key.partition("/")
        return hub.storage.get_repo(repo_type_of(kind), repo_id)

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
        size = size_field(payload, "size")
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
        wanted = [_lfs_request(obj) for obj in list_of_objects(payload, "objects")]
        scope = hub.storage.repo_objects(repo)
        base, repo_key = base_url(request), f"{kind}/{repo.id}"
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
    return oid, size_field(obj, "size", required=True)


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
