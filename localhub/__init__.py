"""``python -m release localhub`` / ``python -m localhub``: a local Hugging Face
Hub-compatible server (FastAPI + uvicorn) that the publisher stages releases into and the tests use.

Library API: ``serve_in_background(root, port=None, tokens=None, faults=None)`` (a context manager
yielding a handle with ``.endpoint``, ``.root``, ``.token``, ``.set_faults()``, ``.fault_counts()``),
``create_app`` and ``Storage``. See docs/localhub.md."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from common.config import setting
from common.errors import UsageError
from localhub.background import LocalHubHandle, free_port, serve_in_background
from localhub.config import (
    DEFAULT_ADMIN_TOKEN,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_TOKEN,
    DEFAULT_USER,
)
from localhub.faults import FaultConfig, FaultConfigError
from localhub.server import HubSettings, create_app
from localhub.storage import Storage

__all__ = [
    "LocalHubHandle",
    "Options",
    "free_port",
    "main",
    "serve_in_background",
    "DEFAULT_TOKEN",
    "DEFAULT_ADMIN_TOKEN",
    "DEFAULT_USER",
]

EPILOG = f"""examples:
  python -m release localhub --root outputs/demo/hub
  python -m release localhub --root /tmp/hub --port 9000 --token alice=hf_secret1 --faults faults.yaml
then point Hub clients at it (huggingface_hub reads these at import time):
  HF_ENDPOINT=http://127.0.0.1:{DEFAULT_PORT} HF_HUB_DISABLE_XET=1 HF_TOKEN={DEFAULT_TOKEN} python ...
"""


@dataclass(frozen=True)
class Options:
    root: Path = setting(None, "storage folder (created; survives restarts)", required=True)
    host: str = setting(DEFAULT_HOST, "interface to listen on")
    port: int = setting(DEFAULT_PORT, "port to listen on (0: a free one)")
    token: tuple[str, ...] = setting(
        (),
        f"a write token, optionally with its user name (repeatable; default: the public staging token "
        f"{DEFAULT_TOKEN!r} for user {DEFAULT_USER!r})",
        repeat=True,
        metavar="[USER=]TOKEN",
    )
    admin_token: str = setting(DEFAULT_ADMIN_TOKEN, "token for the /_admin routes")
    faults: Path | None = setting(None, "fault-injection config (YAML or JSON)")
    log_level: Literal["debug", "info", "warning", "error"] = setting("info", "server log level")


def parse_tokens(values: tuple[str, ...] | list[str] | None) -> dict[str, str]:
    """``[USER=]TOKEN`` strings -> {token: user}."""
    if not values:
        return {DEFAULT_TOKEN: DEFAULT_USER}
    tokens = {}
    for value in values:
        user, _, token = value.rpartition("=")
        if not token:
            raise UsageError(f"--token {value!r}: expected TOKEN or USER=TOKEN")
        tokens[token] = user or DEFAULT_USER
    return tokens


def main(args: Options) -> int:
    import uvicorn

    try:
        faults = FaultConfig.load(args.faults) if args.faults else FaultConfig()
    except (OSError, FaultConfigError, ValueError) as err:
        raise FaultConfigError(f"cannot use --faults {args.faults}: {err}") from None
    tokens = parse_tokens(args.token)
    port = args.port or free_port(args.host)
    app = create_app(
        Storage(args.root), HubSettings(tokens=tokens, admin_token=args.admin_token, faults=faults)
    )
    _print_banner(args, port, tokens, faults)
    uvicorn.run(app, host=args.host, port=port, log_level=args.log_level)
    return 0


def _print_banner(args: Options, port: int, tokens: dict[str, str], faults: Any) -> None:
    endpoint = f"http://{args.host}:{port}"
    # Tokens are secrets: only the public default one is ever printed.
    token_hint = DEFAULT_TOKEN if DEFAULT_TOKEN in tokens else "<one of your --token values>"
    print(
        f"localhub: serving {args.root.resolve()} at {endpoint} ({len(tokens)} token(s),"
        f" {len(faults.rules)} fault rule(s))\n"
        f"  use it: HF_ENDPOINT={endpoint} HF_HUB_DISABLE_XET=1 HF_TOKEN={token_hint} python ...\n"
        f"  browse: {endpoint}/  (repos), {endpoint}/_docs (routes)",
        flush=True,
    )
