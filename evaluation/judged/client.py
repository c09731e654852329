"""An OpenAI-compatible chat-completions client for judges: concurrent calls from a thread pool, a
requests-per-minute limit shared by every thread, and retries with backoff on 429 and 5xx.

The API key is read from an environment variable at call time and only ever placed in the
``Authorization`` header: it is never logged, never part of an error message, never written to a file."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any
from urllib.parse import urlsplit

import httpx
from tqdm.auto import tqdm

from common.errors import ServiceError

DEFAULT_JUDGE_MODEL = "gpt-4o"  # the study's MT-Bench judge (PAPER.md)
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})


class JudgeError(ServiceError):
    """The judge endpoint failed for good (after retries, or a status that retrying cannot fix)."""


@dataclass(frozen=True)
class JudgeSettings:
    url: str  # base URL of the API, e.g. https://api.openai.com/v1 (``/chat/completions`` is appended)
    model: str = DEFAULT_JUDGE_MODEL
    key_env: str = DEFAULT_KEY_ENV
    name: str | None = None  # the judge's recorded identity; default: the model name
    requests_per_minute: float = 60.0
    concurrency: int = 8
    max_retries: int = 6
    backoff_s: float = 2.0  # first retry waits this long, doubling each time (or the server's Retry-After)
    max_backoff_s: float = 60.0
    timeout_s: float = 120.0

    @property
    def identity(self) -> str:
        """What is recorded with every score and names the judgment caches. A local folder served as
        the judge is named by its folder name: published files carry no local paths."""
        name = self.name or self.model
        local = name.startswith(("/", ".", "~")) or Path(name).expanduser().is_dir()
        return PurePath(name).name if local else name

    @property
    def endpoint(self) -> str:
        return self.url.rstrip("/") + "/chat/completions"

    @property
    def host(self) -> str:
        """The endpoint's host, for messages: no credentials, path or query."""
        parts = urlsplit(self.url)
        return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else self.url


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[dict[str, str], ...]
    max_tokens: int
    temperature: float = 0.0
    logprobs: bool = False  # ask for the top-5 log-probabilities of each output token (AlpacaEval)

    def payload(self, model: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "messages": list(self.messages),
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        if self.logprobs:
            body.update(logprobs=True, top_logprobs=5)
        return body


@dataclass
class CallStats:
    requests: int = 0  # HTTP requests sent, retries included
    retries: int = 0
    completed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


class RateLimiter:
    """Spaces request starts at least ``60 / rpm`` seconds apart, across all threads."""

    def __init__(self, requests_per_minute: float, clock: Callable[[], float] = time.monotonic):
        self.interval = 60.0 / requests_per_minute if requests_per_minute > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock = clock

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)


class JudgeClient:
    def __init__(self, settings: JudgeSettings, transport: httpx.BaseTransport | None = None):
        if settings.requests_per_minute <= 0 or settings.concurrency < 1 or settings.max_retries < 0:
            raise JudgeError("judge settings: requests per minute and concurrency must be positive")
        self.settings = settings
        self.stats = CallStats()
        self.limiter = RateLimiter(settings.requests_per_minute)
        self._http = httpx.Client(timeout=settings.timeout_s, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> JudgeClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.settings.key_env, "")
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _detail(self, response: httpx.Response) -> str:
        """The start of an error body, for messages, with the API key blanked (some servers echo it)."""
        text = response.text[:300].replace("\n", " ")
        key = os.environ.get(self.settings.key_env, "")
        return text.replace(key, "***") if key else text

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after is not None:
            try:
                return min(self.settings.max_backoff_s, max(0.0, float(retry_after)))
            except ValueError:
                pass  # an HTTP date: fall back to our own backoff
        backoff = self.settings.backoff_s * 2**attempt
        return min(self.settings.max_backoff_s, backoff * (0.5 + random.random() / 2))

    def complete(self, request: ChatRequest) -> dict[str, Any]:
        """The response JSON of one chat completion; retried on 429, 5xx and connection errors."""
        settings = self.settings
        problem = ""
        for attempt in range(settings.max_retries + 1):
            if attempt:
                self.stats.add(retries=1)
            self.limiter.wait()
            self.stats.add(requests=1)
            response = None
            try:
                response = self._http.post(
                    settings.endpoint, json=request.payload(settings.model), headers=self._headers()
                )
            except httpx.TransportError as error:
                problem = f"{type(error).__name__}"
            else:
                if response.status_code == 200:
                    self.stats.add(completed=1)
                    return _json(response, settings)
                problem = f"HTTP {response.status_code}: {self._detail(response)}"
                if response.status_code not in RETRIED_STATUSES:
                    raise JudgeError(_refusal(settings, response.status_code, problem))
            if attempt < settings.max_retries:
                time.sleep(self._delay(attempt, response))
        raise JudgeError(
            f"judge {settings.model} at {settings.host} failed {settings.max_retries + 1} times "
            f"(last: {problem}); lower --judge-rpm or retry later: finished judgments are cached"
        )

    def complete_all(
        self, requests: Iterable[tuple[Any, ChatRequest]], description: str
    ) -> Iterable[tuple[Any, dict[str, Any] | JudgeError]]:
        """Run requests concurrently; yields (key, response or the JudgeError) as they finish."""
        requests = list(requests)
        with (
            ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool,
            tqdm(total=len(requests), desc=description, unit="call") as progress,
        ):
            futures = {pool.submit(self.complete, request): key for key, request in requests}
            for future in as_completed(futures):
                progress.update()
                try:
                    yield futures[future], future.result()
                except JudgeError as error:
                    yield futures[future], error


def _json(response: httpx.Response, settings: JudgeSettings) -> dict[str, Any]:
    try:
        body = response.json()
        body["choices"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError) as error:
        raise JudgeError(
            f"judge at {settings.host} answered 200 without a chat completion ({type(error).__name__}); "
            "is --judge-url an OpenAI-compatible /v1 base URL?"
        ) from None
    return body


def _refusal(settings: JudgeSettings, status: int, problem: str) -> str:
    if status in (401, 403):
        return (
            f"judge at {settings.host} refused the request ({problem}); set the API key in the "
            f"environment variable {settings.key_env} (or name another with --judge-key-env)"
        )
    return f"judge at {settings.host} rejected the request ({problem}); check --judge-url and --judge-model"


def message_text(response: dict[str, Any]) -> str:
    return str(response["choices"][0]["message"].get("content") or "")


def top_logprobs(response: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The first output token's top log-probabilities, when the endpoint returned them."""
    logprobs = response["choices"][0].get("logprobs") or {}
    content = logprobs.get("content") or []
    if not content:
        return None
    return content[0].get("top_logprobs") or None
