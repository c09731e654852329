"""Collections: create, list, read, add and remove items, delete; private ones are visible to their
owner's namespace members only, like private repos."""

from __future__ import annotations

import html
import re
import secrets
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse

from common.io import read_json, write_json
from localhub.hub import Hub
from localhub.inputs import json_body, object_field, text_field, typed_field
from localhub.storage import HubError, now_iso

COLLECTION_ITEM_TYPES = ("model", "dataset", "space", "paper", "collection")


def visible(hub: Hub, request: Request, collection: dict[str, Any]) -> bool:
    return hub.may_see(hub.principal(request), collection["owner"], bool(collection.get("private")))


def readable_collection(hub: Hub, request: Request, slug: str) -> dict[str, Any]:
    """A collection this request may read; a private one of someone else is 404, like a missing one."""
    path = hub.storage.collection_path(slug)
    collection = read_json(path) if path.exists() else None
    if collection is None or not visible(hub, request, collection):
        raise HubError(404, f"Collection {slug[:200]!r} not found.")
    return collection


def collection_routes(app: FastAPI, hub: Hub) -> None:
    storage = hub.storage

    def render(collection: dict[str, Any], listed: bool = False) -> dict[str, Any]:
        owner = collection["owner"]
        # Listings carry no position (the client numbers them itself); single collections do.
        extra = {} if listed else {"position": 0}
        return {**collection, **extra, "owner": {"name": owner, "type": "user", "_id": hub.sign(owner)[:24]}}

    def load(request: Request, slug: str) -> dict[str, Any]:
        return readable_collection(hub, request, slug)

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
        private = typed_field(payload, "private", bool, False)
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
            if visible(hub, request, c)
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
        item = object_field(payload, "item")
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
