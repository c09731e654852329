"""The state every route shares: storage, settings, and who may do what (``Hub``), with the helpers
that turn a request into a repo it may read or write and a ``HubError`` into the Hub's error shape."""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from localhub.accounts import Accounts, Principal
from localhub.config import DEFAULT_MAX_BODY_BYTES
from localhub.faults import FaultConfig, FaultInjector
from localhub.inputs import header_safe, text_field
from localhub.storage import REPO_TYPES, HubError, Repo, Storage

KINDS = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
BAD_CREDENTIALS = "Invalid credentials in Authorization header"  # huggingface_hub keys its 401 handling on it
LFS_URL_TTL_S = 3600  # signed LFS transfer URLs expire: a leaked one does not grant access for ever


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
        repo_type = repo_type_of(kind)
        principal = self.principal(request)
        try:
            repo = self.storage.get_repo(repo_type, repo_id)
        except HubError as err:
            if err.status == 404:
                raise repo_not_found(repo_type, repo_id) from None
            raise
        if not self.may_see(principal, repo.id.split("/")[0], repo.private):
            raise repo_not_found(repo_type, repo_id)
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


def repo_not_found(repo_type: str, repo_id: str) -> HubError:
    return HubError(
        404,
        f"Repository {repo_type}s/{repo_id} not found (or it is private and your token may not read it).",
        "RepoNotFound",
    )


def repo_type_of(kind: str) -> str:
    if kind not in KINDS:
        raise HubError(404, f"Unknown repo kind {kind[:50]!r}: expected models, datasets or spaces.")
    return KINDS[kind]


def type_field(payload: dict[str, Any]) -> str:
    repo_type = text_field(payload, "type", "model")
    if repo_type not in REPO_TYPES:
        raise HubError(400, f"Invalid repo type {repo_type[:50]!r}: expected one of {', '.join(REPO_TYPES)}.")
    return repo_type


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def error_response(exc: HubError) -> JSONResponse:
    headers = {"X-Error-Message": BAD_CREDENTIALS if exc.status == 401 else header_safe(exc.message)}
    if exc.code:
        headers["X-Error-Code"] = exc.code
    # Messages quote user input: keep the body encodable whatever it holds.
    message = exc.message.encode("utf-8", "backslashreplace").decode("utf-8")
    return JSONResponse({"error": message}, status_code=exc.status, headers=headers)


def validation_message(exc: RequestValidationError) -> str:
    problems = [
        f"{'.'.join(str(part) for part in error.get('loc', ())[1:]) or 'request'}: {error.get('msg', 'invalid')}"
        for error in exc.errors()
    ]
    return "Invalid request parameter(s): " + "; ".join(problems)
