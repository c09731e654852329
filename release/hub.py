"""A thin layer over ``huggingface_hub`` for publishing at scale: retries with exponential backoff and
jitter (429, 5xx, dropped connections, timeouts; ``Retry-After`` and ``RateLimit`` headers honoured), one
request budget (token bucket) shared by all workers and applied to every HTTP request the client
sends, paced repo creation, and request counters. The token never leaves ``HfApi``: errors are
re-raised with messages that are scrubbed of it."""

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


def _route(request: Any) -> str:
    path = request.url.path
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


def is_retryable(error: BaseException) -> bool:
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(error, (httpx2.TransportError, ConnectionError, TimeoutError)):
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


def status_of(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None) if response is not None else getattr(error, "status", None)


class Retrier:
    def __init__(
        self, policy: RetryPolicy, token: str | None = None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.policy, self.token, self.sleep = policy, token, sleep
        self.retries: Counter[str] = Counter()
        self.lock = threading.Lock()

    def delay(self, attempt: int, error: BaseException) -> float:
        backoff = min(self.policy.max_delay_s, self.policy.base_delay_s * 2**attempt)
        backoff *= 1 + random.uniform(-self.policy.jitter, self.policy.jitter)
        asked = retry_after_seconds(error)
        return max(backoff, min(asked, self.policy.max_delay_s * 4)) if asked is not None else backoff

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        for attempt in range(self.policy.max_attempts):
            try:
                return fn(*args, **kwargs)
            except Exception as error:
                if not is_retryable(error) or attempt == self.policy.max_attempts - 1:
                    message = scrub(f"{what} failed: {type(error).__name__}: {error}", self.token)
                    raise SecretSafeError(message, status_of(error)) from None
                with self.lock:
                    self.retries[type(error).__name__] += 1
                wait = self.delay(attempt, error)
                log.debug("%s: retry %d in %.2fs after %s", what, attempt + 1, wait, type(error).__name__)
                self.sleep(wait)
        raise AssertionError("unreachable")


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
