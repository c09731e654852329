"""``python -m release localhub`` / ``python -m localhub``: a local Hugging Face
Hub-compatible server (FastAPI + uvicorn) that the publisher stages releases into and the tests use.

Library API: ``serve_in_background(root, port=None, tokens=None, faults=None)`` (a context manager
yielding a handle with ``.endpoint``, ``.root``, ``.token``, ``.set_faults()``, ``.fault_counts()``;
``tokens`` may be a ``localhub.accounts.Accounts`` for team mode), ``create_app`` and ``Storage``.

Modules: accounts (users, tokens, organisations), hub (permissions), inputs (untrusted input),
server / lfs_routes / collection_routes (routes), pages (HTML), storage and tree (data).
See docs/localhub.md."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

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


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--root", type=Path, required=True, help="storage folder (created; survives restarts)"
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="interface to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on (0: a free one)")
    parser.add_argument(
        "--tokens-file",
        type=Path,
        default=os.environ.get(TOKENS_FILE_ENV) or None,
        help=f"users, their read/write tokens and organisations (YAML/JSON; see docs/localhub.md);"
        f" default: ${TOKENS_FILE_ENV}. Enforces namespaces: each user writes only to its own and"
        " its organisations'",
    )
    parser.add_argument(
        "--token",
        action="append",
        default=None,
        metavar="[USER=]TOKEN",
        help=f"a write token, optionally with its user name (repeatable; visible in `ps`: prefer"
        f" --tokens-file; default: the public staging token {DEFAULT_TOKEN!r} for user {DEFAULT_USER!r},"
        " who owns every namespace)",
    )
    parser.add_argument(
        "--admin-token",
        default=os.environ.get(ADMIN_TOKEN_ENV) or None,
        help=f"token for the /_admin routes (fault control); default: ${ADMIN_TOKEN_ENV}, else the"
        f" public {DEFAULT_ADMIN_TOKEN!r} in single-user mode and none (disabled) with --tokens-file",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help="largest API request body (413 above it; LFS uploads are bounded by their announced size)",
    )
    parser.add_argument("--faults", type=Path, default=None, help="fault-injection config (YAML or JSON)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument(
        "--forwarded-allow-ips",
        default="127.0.0.1",
        help="proxies whose X-Forwarded-Proto/For headers are trusted (behind a TLS reverse proxy)",
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


def load_accounts(args: argparse.Namespace) -> Accounts:
    """The tokens file (team mode) or the --token values (single-user mode when they name one user)."""
    if args.tokens_file is not None:
        if args.token:
            raise AccountsError("use --tokens-file or --token, not both")
        return Accounts.load(args.tokens_file, args.admin_token)
    return Accounts.simple(parse_tokens(args.token), args.admin_token or DEFAULT_ADMIN_TOKEN)


def main(args: argparse.Namespace) -> int:
    try:
        faults = FaultConfig.load(args.faults) if args.faults else FaultConfig()
    except (OSError, FaultConfigError, ValueError) as err:
        print(f"error: cannot use --faults {args.faults}: {err}", file=sys.stderr)
        return 2
    try:
        accounts = load_accounts(args)
    except AccountsError as err:
        print(f"error: {err} (see docs/localhub.md, 'Run it for a team')", file=sys.stderr)
        return 2
    if args.max_body_bytes < 1:
        print("error: --max-body-bytes must be a positive number of bytes", file=sys.stderr)
        return 2
    import uvicorn  # lazy on purpose: the --help and configuration errors do not wait for it

    port = args.port or free_port(args.host)
    settings = HubSettings(accounts, faults, args.max_body_bytes)
    app = create_app(Storage(args.root), settings)
    _print_banner(args, port, accounts, faults)
    uvicorn.run(
        app, host=args.host, port=port, log_level=args.log_level, forwarded_allow_ips=args.forwarded_allow_ips
    )
    return 0


def _print_banner(args: argparse.Namespace, port: int, accounts: Accounts, faults: Any) -> None:
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
