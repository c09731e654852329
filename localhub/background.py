"""Run the local Hub inside this process (a uvicorn server on a thread): for tests, the publisher's
staging mode and benchmarks. ``serve_in_background`` returns only once the server answers."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from localhub.accounts import Accounts
from localhub.config import DEFAULT_ADMIN_TOKEN, DEFAULT_MAX_BODY_BYTES, DEFAULT_TOKEN, DEFAULT_USER
from localhub.faults import FaultConfig
from localhub.server import HubSettings, create_app
from localhub.storage import Storage


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class LocalHubHandle:
    """A running local Hub: where it is, how to write to it, and its fault controls."""

    endpoint: str
    root: Path
    token: str
    admin_token: str

    def _admin(self, method: str, path: str, json: Any = None) -> dict[str, Any]:
        response = httpx.request(
            method,
            f"{self.endpoint}{path}",
            json=json,
            timeout=30,
            headers={"authorization": f"Bearer {self.admin_token}"},
        )
        response.raise_for_status()
        return response.json()

    def set_faults(self, config: Mapping[str, Any] | None) -> dict[str, Any]:
        """Replace the fault rules (``None`` or ``{}`` removes them) and reset the counters."""
        return self._admin("PUT", "/_admin/faults", dict(config or {}))

    def reset_faults(self) -> None:
        self.set_faults(None)

    def fault_counts(self) -> dict[str, Any]:
        return self._admin("GET", "/_admin/faults")["counts"]

    @property
    def env(self) -> dict[str, str]:
        """Environment variables pointing Hub clients at this server (HF_ENDPOINT is read at import)."""
        return {"HF_ENDPOINT": self.endpoint, "HF_HUB_DISABLE_XET": "1"}


TokenSpec = Mapping[str, str] | list[str] | str | Accounts | None


def _accounts(tokens: TokenSpec, admin_token: str) -> Accounts:
    if isinstance(tokens, Accounts):
        return tokens
    if tokens is None:
        token_map = {DEFAULT_TOKEN: DEFAULT_USER}
    elif isinstance(tokens, str):
        token_map = {tokens: DEFAULT_USER}
    elif isinstance(tokens, Mapping):
        token_map = dict(tokens)
    else:
        token_map = dict.fromkeys(tokens, DEFAULT_USER)
    return Accounts.simple(token_map, admin_token)


@contextmanager
def serve_in_background(
    root: str | Path,
    port: int | None = None,
    tokens: TokenSpec = None,
    faults: Mapping[str, Any] | str | Path | None = None,
    host: str = "127.0.0.1",
    admin_token: str = DEFAULT_ADMIN_TOKEN,
    startup_timeout: float = 30.0,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Iterator[LocalHubHandle]:
    """Serve ``root`` on ``host:port`` (a free port if None) until the block exits.

    ``tokens`` maps write tokens to user names (a list or a single token uses the default user;
    one user owns every namespace) or is an ``Accounts`` (team mode, e.g. ``Accounts.load(file)``);
    ``faults`` is a fault config (mapping) or the path of a YAML/JSON one."""
    import uvicorn

    fault_config = (
        FaultConfig.load(faults)
        if isinstance(faults, (str, Path))
        else FaultConfig.from_obj(dict(faults) if faults else None)
    )
    accounts = _accounts(tokens, admin_token)
    settings = HubSettings(accounts, fault_config, max_body_bytes)
    app = create_app(Storage(root), settings)
    port = port or free_port(host)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
        )
    )
    _disable_xet_uploads()
    thread = threading.Thread(target=server.run, name=f"localhub-{port}", daemon=True)
    thread.start()
    _wait_started(server, thread, host, port, startup_timeout)
    try:
        yield LocalHubHandle(
            f"http://{host}:{port}",
            Path(root).resolve(),
            next(iter(accounts.tokens), ""),
            accounts.admin_token or "",
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _disable_xet_uploads() -> None:
    """This server speaks LFS, not Xet, and huggingface_hub has no fallback once it picked Xet: clients
    in this process (the publisher's staging mode, tests) must upload through LFS."""

    from huggingface_hub import constants

    os.environ["HF_HUB_DISABLE_XET"] = "1"  # child processes
    constants.HF_HUB_DISABLE_XET = True  # this process: the constant was read at import time


def _wait_started(server: Any, thread: threading.Thread, host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(
                f"the local Hub could not start on {host}:{port} (port in use? see the log above)"
            )
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"the local Hub did not start on {host}:{port} within {timeout:.0f}s")
        time.sleep(0.02)
