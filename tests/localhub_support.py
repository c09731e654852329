"""Shared helpers of the local Hub's team-mode suites: a server with two users (alice, bob), a read
token, an organisation, and a snapshot of the storage tree to prove that a request changed nothing."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from huggingface_hub import HfApi

from localhub import serve_in_background
from localhub.accounts import Accounts

ALICE, ALICE_READ, BOB = "hf_alice_write_0001", "hf_alice_read_0001", "hf_bob_write_0001"
TEAM = {
    "users": {
        "alice": {"tokens": [ALICE, {"token": ALICE_READ, "role": "read"}]},
        "bob": {"tokens": [BOB]},
    },
    "orgs": {"lab": ["alice"]},
    "admin_token": "hf_team_admin_0001",
}


@contextmanager
def team_hub(root: Path, **kwargs) -> Iterator:
    with serve_in_background(root, tokens=Accounts.from_obj(TEAM), **kwargs) as hub:
        yield hub


def client(hub, token: str | None) -> HfApi:
    """``token=None``: anonymous (False: no fallback to HF_TOKEN or a stored token)."""
    return HfApi(endpoint=hub.endpoint, token=token if token is not None else False)


def unique(prefix: str = "r") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under the storage root with its size and content hash."""
    return {
        str(path.relative_to(root)): (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def wait_until_healthy(endpoint: str, timeout_s: float = 60.0) -> None:
    """Until a server started as a child process answers /health (bounded: it may be slow to import)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{endpoint}/health").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise TimeoutError(f"{endpoint} did not answer /health within {timeout_s:.0f} s")
