"""A thin layer over ``huggingface_hub`` for publishing at scale: retries with exponential backoff and
jitter (429, 5xx, dropped connections, timeouts; ``Retry-After`` and ``RateLimit`` headers honoured), one
request budget (token bucket) shared by all workers and applied to every HTTP request the client
sends, paced repo creation, and request counters. The token never leaves ``HfApi``: errors are
re-raised with messages that are scrubbed of it.

Fail fast: :func:`preflight` checks the endpoint and the token once before any work (reachable,
``whoami``, write access to the namespace); during the run, offline mode, 401, 403 and a few consecutive
requests without any answer are fatal for the whole release (:class:`FatalHubError`), not retried per
repo."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import httpx2

from common.errors import ServiceError
from release.config import RequestBudget, RetryPolicy

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRY_STATUS = frozenset({408, 409, 423, 425, 429, 500, 502, 503, 504})


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; ``acquire`` blocks until one is free."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.capacity = max(rate, 1e-6), max(burst, 1)
        self.tokens = float(self.capacity)
        self.updated = time.monotonic()
        self.paused_until = 0.0
        self.lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                wait = self.paused_until - now
                if wait <= 0 and self.tokens >= 1:
                    self.tokens -= 1
                    return
                wait = max(wait, (1 - self.tokens) / self.rate)
            time.sleep(min(wait, 5.0))

    def pause(self, seconds: float) -> None:
        """The server said the budget is spent (RateLimit remaining 0): nobody sends until it resets."""
        with self.lock:
            self.paused_until = max(self.paused_until, time.monotonic() + seconds)


class RequestStats:
    """Counts HTTP requests by kind (method + API route), thread-safe."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def add(self, kind: str) -> None:
        with self.lock:
            self.counts[kind] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def commits(self) -> int:
        return sum(
            n for kind, n in self.counts.items() if kind.startswith("POST") and kind.endswith("/commit")
        )


LISTINGS = frozenset({"/api/models", "/api/datasets", "/api/spaces"})


def _route(request: Any) -> str:
    path = request.url.path
    if path in LISTINGS:
        return f"{request.method} listing"
    for marker in (
        "/commit/",
        "/preupload/",
        "/tree/",
        "/paths-info/",
        "/branch/",
        "/refs",
        "/resolve/",
        "/info/lfs/objects/batch",
        "/api/repos/create",
        "/collections",
        "/validate-yaml",
        "/agent-harnesses",  # huggingface_hub's own, once per process, to HF_ENDPOINT: not the release's
    ):
        if marker in path:
            return f"{request.method} {marker.rstrip('/')}"
    return f"{request.method} other"


_ACTIVE: dict[str, Any] = {"bucket": None, "stats": None}


def _on_request(request: Any) -> None:
    from huggingface_hub.utils._http import hf_request_event_hook

    hf_request_event_hook(request)
    bucket, stats = _ACTIVE["bucket"], _ACTIVE["stats"]
    if bucket is not None:
        bucket.acquire()
    if stats is not None:
        stats.add(_route(request))


def _on_response(response: Any) -> None:
    from huggingface_hub.utils._http import parse_ratelimit_headers

    info = parse_ratelimit_headers(response.headers)
    bucket = _ACTIVE["bucket"]
    if info is not None and info.remaining == 0 and bucket is not None:
        bucket.pause(info.reset_in_seconds)


def install_budget(budget: RequestBudget | None, timeout_s: float = 60.0) -> RequestStats:
    """Route every request of this process's huggingface_hub client through the budget and counters."""
    from huggingface_hub.utils import close_session, set_client_factory

    stats = RequestStats()
    _ACTIVE["bucket"] = TokenBucket(budget.rate_per_s, budget.burst) if budget else None
    _ACTIVE["stats"] = stats

    def factory() -> Any:
        return httpx2.Client(
            event_hooks={"request": [_on_request], "response": [_on_response]},
            follow_redirects=True,
            timeout=timeout_s,
            limits=httpx2.Limits(max_connections=64, max_keepalive_connections=64),
        )

    set_client_factory(factory)
    close_session()
    return stats


def retry_after_seconds(error: BaseException) -> float | None:
    """Seconds the server asked us to wait (``Retry-After`` or ``RateLimit: ...;t=N``), if any."""
    from huggingface_hub.utils._http import _parse_retry_after, parse_ratelimit_headers

    response = getattr(error, "response", None)
    if response is None:
        return None
    seconds = _parse_retry_after(response.headers)
    if seconds is None:
        info = parse_ratelimit_headers(response.headers)
        seconds = info.reset_in_seconds if info is not None and info.remaining == 0 else None
    return float(seconds) if seconds is not None else None


def is_connection_failure(error: BaseException) -> bool:
    """The request got no answer at all (refused, dropped, timed out); offline mode is not one."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    if isinstance(error, OfflineModeIsEnabled):
        return False
    return isinstance(error, (httpx2.TransportError, ConnectionError, TimeoutError))


def is_retryable(error: BaseException) -> bool:
    from huggingface_hub.errors import HfHubHTTPError

    if is_connection_failure(error):
        return True
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        status = error.response.status_code
        # 409/412 on a commit means the branch moved under us: the caller re-plans, never blind-retries.
        return status in RETRY_STATUS and status != 409
    return False


def scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


class SecretSafeError(ServiceError):
    """An error whose message has been checked for the token; ``status`` is the HTTP status, if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class FatalHubError(SecretSafeError):
    """The Hub cannot be used for this release at all (offline mode, unreachable, token rejected, no
    write access): every worker stops, and the CLI prints this one line and exits 2."""


OFFLINE = "HF_HUB_OFFLINE is set: publishing needs to reach {endpoint}; unset HF_HUB_OFFLINE"


def bad_token(endpoint: str) -> str:
    return (
        f"the Hub at {endpoint} rejected the token (401 Unauthorized): set HF_TOKEN to a valid write "
        "token or run `hf auth login`"
    )


def fatal_reason(error: BaseException, endpoint: str) -> str | None:
    """Why ``error`` ends the whole release, or None when it concerns one request or repo only."""
    from huggingface_hub.errors import EntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError

    if isinstance(error, OfflineModeIsEnabled):
        return OFFLINE.format(endpoint=endpoint)
    if isinstance(error, (RepositoryNotFoundError, EntryNotFoundError)):
        return None  # the Hub answers 401 for a repo it does not show: that is "missing", not "bad token"
    status = status_of(error)
    if status == 401:
        return bad_token(endpoint)
    if status == 403:
        return (
            f"the Hub at {endpoint} refused a write (403 Forbidden: {_first_line(error)}): use a write "
            "token of the namespace's owner or one of its organisations' members"
        )
    return None


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:200] if lines else type(error).__name__


def status_of(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None) if response is not None else getattr(error, "status", None)


class Retrier:
    """Retries one request with backoff; shared by all workers, it also stops them all at the first
    fatal error (see :func:`fatal_reason`, and ``policy.max_connection_failures`` requests in a row
    without an answer)."""

    def __init__(
        self,
        policy: RetryPolicy,
        token: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        endpoint: str = "the endpoint",
    ) -> None:
        self.policy, self.token, self.sleep, self.endpoint = policy, token, sleep, endpoint
        self.retries: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.fatal: str | None = None
        self.unanswered = 0  # consecutive requests that got no answer, over all workers

    def _stop_if_fatal(self, error: BaseException | None) -> None:
        """Record what ``error`` says about the Hub (None: a request was answered); raise once fatal."""
        with self.lock:
            if error is None or not is_connection_failure(error):
                self.unanswered = 0
            else:
                self.unanswered += 1
            reason = fatal_reason(error, self.endpoint) if error is not None else None
            if reason is None and self.unanswered >= self.policy.max_connection_failures:
                reason = (
                    f"lost the connection to the Hub at {self.endpoint}: {self.unanswered} requests in a row "
                    f"got no answer (last: {type(error).__name__}: {_first_line(error)}); check the endpoint "
                    "and the network, then re-run (finished repos are kept)"
                )
            if reason is not None and self.fatal is None:
                self.fatal = scrub(reason, self.token)
            if self.fatal is not None:
                raise FatalHubError(self.fatal) from None

    def delay(self, attempt: int, error: BaseException) -> float:
        backoff = min(self.policy.max_delay_s, self.policy.base_delay_s * 2**attempt)
        backoff *= 1 + random.uniform(-self.policy.jitter, self.policy.jitter)
        asked = retry_after_seconds(error)
        return max(backoff, min(asked, self.policy.max_delay_s * 4)) if asked is not None else backoff

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        for attempt in range(self.policy.max_attempts):
            if self.fatal is not None:  # another worker found the Hub unusable
                raise FatalHubError(self.fatal)
            try:
                result = fn(*args, **kwargs)
            except Exception as error:
                self._stop_if_fatal(error)
                if not is_retryable(error) or attempt == self.policy.max_attempts - 1:
                    message = scrub(f"{what} failed: {type(error).__name__}: {error}", self.token)
                    raise SecretSafeError(message, status_of(error)) from None
                with self.lock:
                    self.retries[type(error).__name__] += 1
                wait = self.delay(attempt, error)
                log.debug("%s: retry %d in %.2fs after %s", what, attempt + 1, wait, type(error).__name__)
                self.sleep(wait)
            else:
                self._stop_if_fatal(None)
                return result
        raise AssertionError("unreachable")


# ---------------------------------------------------------------- preflight

WRITE_ROLES = frozenset({"admin", "write", "contributor"})  # roleInOrg values that may create repos
PREFLIGHT_ATTEMPTS = 3
PREFLIGHT_TIMEOUT_S = 10.0


def preflight(endpoint: str, token: str | None, namespace: str, *, write: bool) -> str | None:
    """Check once, before any work, that the Hub at ``endpoint`` can be used: not offline, reachable,
    the token valid (``whoami``) and, when ``write``, allowed to write to ``namespace``. Returns the
    token's user name (None without a token); raises :class:`FatalHubError` with one line otherwise."""
    from huggingface_hub import constants

    if constants.is_offline_mode():
        raise FatalHubError(OFFLINE.format(endpoint=endpoint))
    response = _ask_whoami(endpoint, token)
    if response.status_code == 401:
        if token is None:
            return None  # reachable; an anonymous dry run needs nothing more
        raise FatalHubError(bad_token(endpoint))
    if response.status_code != 200:
        raise FatalHubError(
            f"{endpoint} does not answer like a Hub (GET /api/whoami-v2: HTTP {response.status_code}); "
            "check --endpoint / HF_ENDPOINT"
        )
    account = response.json()
    if write:
        check_write_access(account, namespace, endpoint)
    return str(account.get("name"))


def _ask_whoami(endpoint: str, token: str | None) -> Any:
    """GET /api/whoami-v2, a few quick attempts while there is no answer or the Hub is overloaded."""
    from huggingface_hub.utils import get_session

    headers = {"authorization": f"Bearer {token}"} if token else {}
    problem = ""
    for attempt in range(PREFLIGHT_ATTEMPTS):
        if attempt:
            time.sleep(attempt)
        try:
            response = get_session().get(
                f"{endpoint}/api/whoami-v2", headers=headers, timeout=PREFLIGHT_TIMEOUT_S
            )
        except httpx2.TransportError as error:
            problem = f"{type(error).__name__}: {_first_line(error)}"
            continue
        if response.status_code not in RETRY_STATUS:
            return response
        problem = f"HTTP {response.status_code}"
    raise FatalHubError(
        scrub(
            f"cannot reach the Hub at {endpoint} ({problem}); check --endpoint / HF_ENDPOINT and the network",
            token,
        )
    )


def check_write_access(account: dict[str, Any], namespace: str, endpoint: str) -> None:
    """The ``whoami`` answer must show a write token of ``namespace``'s user or of a member of that
    organisation with a writing role (fine-grained tokens: ``repo.write`` on that namespace)."""
    user = str(account.get("name"))
    access = (account.get("auth") or {}).get("accessToken") or {}
    role = access.get("role")
    if role == "read":
        raise FatalHubError(
            f"the token of {user!r} at {endpoint} is read-only: create a write token and set HF_TOKEN to it"
        )
    writable = {user} | {
        str(org.get("name"))
        for org in account.get("orgs") or []
        if org.get("roleInOrg", "write") in WRITE_ROLES
    }
    if role == "fineGrained":
        scoped = (access.get("fineGrained") or {}).get("scoped") or []
        writable &= {
            str((scope.get("entity") or {}).get("name"))
            for scope in scoped
            if "repo.write" in (scope.get("permissions") or [])
        }
    if namespace not in writable:
        raise FatalHubError(
            f"the token of {user!r} may not write to namespace {namespace!r} at {endpoint} (it may write to "
            f"{sorted(writable) or 'nothing'}): pass --namespace {user}, or use a token of a member of {namespace!r}"
        )


class Pacer:
    """At most one repo creation every ``interval`` seconds, across all workers."""

    def __init__(self, interval: float) -> None:
        self.interval, self.next_at, self.lock = interval, 0.0, threading.Lock()

    def wait(self) -> None:
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next_at)
            self.next_at = start + self.interval
        if start > now:
            time.sleep(start - now)
