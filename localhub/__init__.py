"""``python -m release localhub`` / ``python -m localhub``: a local Hugging Face
Hub-compatible server (FastAPI + uvicorn) that the publisher stages releases into and the tests use.

Library API: ``serve_in_background(root, port=None, tokens=None, faults=None)`` (a context manager
yielding a handle with ``.endpoint``, ``.root``, ``.token``, ``.set_faults()``, ``.fault_counts()``;
``tokens`` may be a ``localhub.accounts.Accounts`` for team mode), ``create_app`` and ``Storage``.

Modules: accounts (users, tokens, organisations), hub (permissions), inputs (untrusted input),
server / lfs_routes / collection_routes (routes), pages (HTML), storage and tree (data).
See docs/localhub.md."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from common.config import setting
from common.errors import UsageError
from localhub.accounts import ADMIN_TOKEN_ENV, TOKENS_FILE_ENV, Accounts, AccountsError
from localhub.background import LocalHubHandle, free_port, serve_in_background
from localhub.config import (
    DEFAULT_ADMIN_TOKEN,
    DEFAULT_HOST,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_PORT,
    DEFAULT_TOKEN,
    DEFAULT_USER,
)
from localhub.faults import FaultConfig, FaultConfigError
from localhub.server import HubSettings, create_app
from localhub.storage import Storage

__all__ = [
    "LocalHubHandle",
    "configure",
    "free_port",
    "main",
    "serve_in_background",
    "DEFAULT_TOKEN",
    "DEFAULT_ADMIN_TOKEN",
    "DEFAULT_USER",
]

EPILOG = f"""examples:
  python -m release localhub --root outputs/demo/hub
  python -m localhub --root /srv/hub --host 0.0.0.0 --tokens-file /etc/localhub/tokens.yaml
  python -m release localhub --root /tmp/hub --port 9000 --faults faults.yaml
then point Hub clients at it (huggingface_hub reads these at import time):
  HF_ENDPOINT=http://127.0.0.1:{DEFAULT_PORT} HF_HUB_DISABLE_XET=1 HF_TOKEN={DEFAULT_TOKEN} python ...
"""


@dataclass(frozen=True)
class Options:
    root: Path = setting(None, "storage folder (created; survives restarts)", required=True)
    host: str = setting(DEFAULT_HOST, "interface to listen on")
    port: int = setting(DEFAULT_PORT, "port to listen on (0: a free one)")
    tokens_file: Path | None = setting(
        None,
        f"users, their read/write tokens and organisations (YAML/JSON; see docs/localhub.md); default: "
        f"${TOKENS_FILE_ENV}. Enforces namespaces: each user writes only to its own and its organisations'",
    )
    token: tuple[str, ...] = setting(
        (),
        f"a write token, optionally with its user name (repeatable; visible in `ps`: prefer --tokens-file; "
        f"default: the public staging token {DEFAULT_TOKEN!r} for user {DEFAULT_USER!r}, who owns every "
        "namespace)",
        repeat=True,
        metavar="[USER=]TOKEN",
    )
    admin_token: str | None = setting(
        None,
        f"token for the /_admin routes (fault control); default: ${ADMIN_TOKEN_ENV}, else the public "
        f"{DEFAULT_ADMIN_TOKEN!r} in single-user mode and none (disabled) with --tokens-file",
    )
    max_body_bytes: int = setting(
        DEFAULT_MAX_BODY_BYTES,
        "largest API request body (413 above it; LFS uploads are bounded by their announced size)",
    )
    faults: Path | None = setting(None, "fault-injection config (YAML or JSON)")
    log_level: Literal["debug", "info", "warning", "error"] = setting("info", "server log level")
    forwarded_allow_ips: str = setting(
        "127.0.0.1", "proxies whose X-Forwarded-Proto/For headers are trusted (behind a TLS reverse proxy)"
    )


def parse_tokens(values: list[str] | None) -> dict[str, str]:
    """``[USER=]TOKEN`` strings -> {token: user}."""
    if not values:
        return {DEFAULT_TOKEN: DEFAULT_USER}
    tokens = {}
    for value in values:
        user, _, token = value.rpartition("=")
        if not token:
            raise AccountsError(f"--token {value!r}: expected TOKEN or USER=TOKEN")
        tokens[token] = user or DEFAULT_USER
    return tokens


def load_accounts(options: Options) -> Accounts:
    """The tokens file (team mode) or the --token values (single-user mode when they name one user)."""
    tokens_file = options.tokens_file or os.environ.get(TOKENS_FILE_ENV) or None
    admin_token = options.admin_token or os.environ.get(ADMIN_TOKEN_ENV) or None
    try:
        if tokens_file is not None:
            if options.token:
                raise AccountsError("use --tokens-file or --token, not both")
            return Accounts.load(Path(tokens_file), admin_token)
        return Accounts.simple(parse_tokens(options.token), admin_token or DEFAULT_ADMIN_TOKEN)
    except AccountsError as err:
        raise AccountsError(f"{err} (see docs/localhub.md, 'Run it for a team')") from None


def main(args: Options) -> int:
    try:
        faults = FaultConfig.load(args.faults) if args.faults else FaultConfig()
    except (OSError, FaultConfigError, ValueError) as err:
        raise FaultConfigError(f"cannot use --faults {args.faults}: {err}") from None
    accounts = load_accounts(args)
    if args.max_body_bytes < 1:
        raise UsageError("--max-body-bytes must be a positive number of bytes")
    import uvicorn  # lazy on purpose: the --help and configuration errors do not wait for it

    port = args.port or free_port(args.host)
    settings = HubSettings(accounts, faults, args.max_body_bytes)
    app = create_app(Storage(args.root), settings)
    _print_banner(args, port, accounts, faults)
    uvicorn.run(
        app, host=args.host, port=port, log_level=args.log_level, forwarded_allow_ips=args.forwarded_allow_ips
    )
    return 0


def _print_banner(args: Options, port: int, accounts: Accounts, faults: Any) -> None:
    endpoint = f"http://{args.host}:{port}"
    # Tokens are secrets: only the public default one is ever printed.
    token_hint = DEFAULT_TOKEN if accounts.principal(DEFAULT_TOKEN) else "<one of your tokens>"
    mode = "single-user" if accounts.single_user else "team"
    print(
        f"localhub: serving {args.root.resolve()} at {endpoint} ({mode} mode, {len(accounts.users)}"
        f" user(s), {len(faults.rules)} fault rule(s))\n"
        f"  use it: HF_ENDPOINT={endpoint} HF_HUB_DISABLE_XET=1 HF_TOKEN={token_hint} python ...\n"
        f"  browse: {endpoint}/",
        flush=True,
    )
