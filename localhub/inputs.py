"""Untrusted input: request bodies, their fields and the URL path. Every problem becomes a 4xx
``HubError`` that names it, never a 5xx: the server may face a shared network."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from fastapi import Request

from localhub.storage import HubError

MAX_HEADER_CHARS = 300
# Stands for an encoded slash (%2F) inside one path segment while routing; see KeepEncodedSlashes.
SLASH = "\0"
LFS_UPLOAD_PREFIX = "/_lfs/upload/"


async def json_body(request: Request, optional: bool = False) -> dict[str, Any]:
    """The request body as a JSON object; ``optional``: an empty body is ``{}``."""
    raw = await request.body()
    if not raw.strip() and optional:
        return {}
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise HubError(400, f"The request body is not valid JSON: {err}.") from err
    if not isinstance(payload, dict):
        raise HubError(400, f"The request body must be a JSON object, not {_type_name(payload)}.")
    _check_text(payload, "The request body")
    return payload


def _check_text(value: Any, where: str) -> None:
    """JSON may escape lone UTF-16 surrogates (a backslash-u d800) that no UTF-8 text can hold: refuse
    them here rather than fail later while storing or echoing them."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as err:
        raise HubError(
            400, f"{where} holds a lone UTF-16 surrogate, which is not text ({err.reason})."
        ) from err


def ndjson_lines(raw: bytes) -> list[dict[str, Any]]:
    """A commit payload: one JSON object per line."""
    lines = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
            raise HubError(400, f"Commit payload line {number} is not valid JSON: {err}.") from err
        if not isinstance(value, dict):
            raise HubError(
                400, f"Commit payload line {number} must be a JSON object, not {_type_name(value)}."
            )
        _check_text(value, f"Commit payload line {number}")
        lines.append(value)
    return lines


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def typed_field(
    payload: dict[str, Any], key: str, kind: type, default: Any = None, required: bool = False
) -> Any:
    """``payload[key]`` checked to be of ``kind`` (``None`` or absent: ``default``)."""
    value = payload.get(key)
    if value is None:
        if required:
            raise HubError(400, f"Field {key!r} is required.")
        return default
    # bool is an int in Python, but not in JSON: refuse true as a size.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise HubError(400, f"Field {key!r} must be {_type_name(kind())}, not {_type_name(value)}.")
    return value


def text_field(payload: dict[str, Any], key: str, default: str | None = None, required: bool = False) -> Any:
    return typed_field(payload, key, str, default, required)


def size_field(payload: dict[str, Any], key: str, required: bool = False) -> int | None:
    size = typed_field(payload, key, int, None, required)
    if size is not None and size < 0:
        raise HubError(400, f"Field {key!r} must be a non-negative size, not {size}.")
    return size


def object_field(payload: dict[str, Any], key: str) -> dict[str, Any]:
    return typed_field(payload, key, dict, {})


def list_of_objects(payload: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = typed_field(payload, key, list, [])
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise HubError(400, f"{key}[{index}] must be an object, not {_type_name(item)}.")
    return items


def base64_field(payload: dict[str, Any], key: str, what: str) -> bytes:
    value = text_field(payload, key, "")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise HubError(400, f"{what}: field {key!r} is not valid base64 ({err}).") from err


def flag(value: Any) -> bool:
    return str(value).lower() in ("1", "true")


def path_param(value: str) -> str:
    """A URL path parameter as the client meant it: decoded exactly once (by the server), with the
    encoded slashes of a revision such as ``refs%2Fpr%2F1`` restored."""
    return value.replace(SLASH, "/")


def header_safe(text: str) -> str:
    """HTTP headers are Latin-1: escape anything else, drop line breaks, and bound the length."""
    line = " ".join(text.split()) or "error"
    safe = line.encode("ascii", "backslashreplace").decode("ascii")
    return safe if len(safe) <= MAX_HEADER_CHARS else safe[: MAX_HEADER_CHARS - 3] + "..."


class KeepEncodedSlashes:
    """Decode the URL path exactly once, keeping ``%2F`` apart from ``/`` (it becomes ``SLASH``) so
    that a revision such as ``refs%2Fpr%2F1`` stays one path segment (huggingface_hub quotes
    revisions with ``safe=""``) while a file named ``a%41.txt`` stays ``a%41.txt``."""

    def __init__(self, app: Callable[..., Any]):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path") or scope["path"].encode()
            text = raw.decode("latin-1").split("?", 1)[0]
            if re.search("%00", text):
                await _reply(send, 400, "The URL path contains an encoded NUL byte (%00).")
                return
            segments = re.split("%2[fF]", text)
            scope = dict(scope, path=SLASH.join(unquote(s, errors="replace") for s in segments))
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` (413) by their Content-Length, or as they stream in.
    LFS uploads are bounded by the size the batch API signed instead."""

    def __init__(self, app: Callable[..., Any], max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith(LFS_UPLOAD_PREFIX):
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if not length.isdigit():
            await _reply(send, 400, "The Content-Length header is not a number.")
            return
        if int(length) > self.max_bytes:
            await _reply(send, 413, self._too_large())
            return
        seen = 0

        async def counted() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HubError(413, self._too_large())
            return message

        await self.app(scope, counted, send)

    def _too_large(self) -> str:
        return (
            f"The request body is larger than this server's limit of {self.max_bytes} bytes"
            " (--max-body-bytes); upload large files through LFS."
        )


async def _reply(send: Any, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-error-message", header_safe(message).encode("latin-1")),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
