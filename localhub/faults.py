"""Fault injection: make the local Hub fail like the real one does under load, reproducibly.

A configuration (YAML/JSON file, or JSON on the admin route of a running server) lists rules::

    seed: 0
    rules:
      - kind: status        # answer with an HTTP error instead of serving the request
        status: 429
        retry_after: 0      # seconds, sent as Retry-After
        probability: 0.2
        methods: [POST]     # optional: only these methods
        path: /preupload/   # optional: regex searched in the URL path
      - kind: drop          # close the connection without a response
        when: after         # before (default): request not processed; after: processed, answer lost
        probability: 0.05
      - kind: delay         # serve the request after a pause
        delay_s: 0.5
        probability: 0.1
        max_count: 3        # optional: stop injecting this rule after 3 faults

Rules are tried in order for every request; each matching rule draws one number from a generator
seeded with ``seed``, so a given sequence of requests meets the same faults on every run. Admin and
health routes are never faulted."""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from common.errors import ConfigError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

KINDS = ("status", "drop", "delay")
EXEMPT_PREFIXES = ("/_admin", "/health")


class FaultConfigError(ConfigError):
    pass


@dataclass(frozen=True)
class FaultRule:
    kind: str
    probability: float = 1.0
    status: int = 503
    retry_after: float | None = None
    delay_s: float = 0.5
    when: str = "before"
    methods: tuple[str, ...] = ()
    path: str | None = None
    max_count: int | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FaultRule:
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise FaultConfigError(
                f"Unknown fault rule field(s) {sorted(unknown)}; allowed: {sorted(cls.__dataclass_fields__)}."
            )
        values = dict(raw)
        values["methods"] = tuple(m.upper() for m in values.get("methods", ()))
        rule = cls(**values)
        rule.validate()
        return rule

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise FaultConfigError(f"Fault kind {self.kind!r} is not one of {', '.join(KINDS)}.")
        if not 0.0 <= self.probability <= 1.0:
            raise FaultConfigError(f"Fault probability {self.probability} must be within [0, 1].")
        if self.kind == "status" and not 400 <= self.status <= 599:
            raise FaultConfigError(f"Fault status {self.status} must be an HTTP error code (400-599).")
        if self.when not in ("before", "after"):
            raise FaultConfigError(f"Fault 'when' must be 'before' or 'after', not {self.when!r}.")
        if self.path is not None:
            try:
                re.compile(self.path)
            except re.error as err:
                raise FaultConfigError(f"Fault path {self.path!r} is not a valid regex: {err}") from err

    def matches(self, method: str, path: str) -> bool:
        return (not self.methods or method in self.methods) and (
            self.path is None or bool(re.search(self.path, path))
        )

    @property
    def label(self) -> str:
        if self.kind == "status":
            return str(self.status)
        return f"drop_{self.when}" if self.kind == "drop" else "delay"


@dataclass
class FaultConfig:
    seed: int = 0
    rules: list[FaultRule] = field(default_factory=list)

    @classmethod
    def from_obj(cls, raw: dict[str, Any] | None) -> FaultConfig:
        raw = raw or {}
        if not isinstance(raw, dict) or set(raw) - {"seed", "rules"}:
            raise FaultConfigError(
                "A fault config is a mapping with 'seed' (int) and 'rules' (list of rules)."
            )
        rules = raw.get("rules") or []
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            raise FaultConfigError("'rules' must be a list of mappings, e.g. [{kind: status, status: 429}].")
        return cls(seed=int(raw.get("seed", 0)), rules=[FaultRule.from_dict(r) for r in rules])

    @classmethod
    def load(cls, path: str | Path) -> FaultConfig:
        text = Path(path).read_text(encoding="utf-8")
        raw = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
        return cls.from_obj(raw)

    def to_obj(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "rules": [
                {k: (list(v) if isinstance(v, tuple) else v) for k, v in rule.__dict__.items()}
                for rule in self.rules
            ],
        }


class FaultInjector:
    """Decides, request by request, which fault (if any) to inject, and counts them."""

    def __init__(self, config: FaultConfig | None = None):
        self._lock = threading.Lock()
        self.configure(config or FaultConfig())

    def configure(self, config: FaultConfig) -> None:
        with self._lock:
            self.config = config
            self._random = random.Random(config.seed)
            self._per_rule = [0] * len(config.rules)
            self._counts: Counter[str] = Counter()

    def pick(self, method: str, path: str) -> FaultRule | None:
        with self._lock:
            self._counts["requests"] += 1
            for index, rule in enumerate(self.config.rules):
                if not rule.matches(method, path):
                    continue
                if self._random.random() >= rule.probability:
                    continue
                if rule.max_count is not None and self._per_rule[index] >= rule.max_count:
                    continue
                self._per_rule[index] += 1
                self._counts[rule.label] += 1
                self._counts["total"] += 1
                return rule
            return None

    def counts(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self._counts["requests"],
                "total": self._counts["total"],
                "by_kind": {k: v for k, v in self._counts.items() if k not in ("requests", "total")},
                "by_rule": list(self._per_rule),
            }


class FaultMiddleware:
    """Pure ASGI middleware (outermost), so it can drop the connection before any byte is sent."""

    def __init__(self, app: ASGIApp, injector: FaultInjector):
        self.app, self.injector = app, injector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        rule = self.injector.pick(scope["method"], scope["path"])
        if rule is None:
            await self.app(scope, receive, send)
        elif rule.kind == "delay":
            await asyncio.sleep(rule.delay_s)
            await self.app(scope, receive, send)
        elif rule.kind == "drop":
            await self._drop(rule, scope, receive, send)
        else:
            await _send_error(send, rule)

    async def _drop(self, rule: FaultRule, scope: Scope, receive: Receive, send: Send) -> None:
        if rule.when == "after":

            async def swallow(message: Message) -> None:
                return None

            await self.app(scope, receive, swallow)
        transport = getattr(getattr(receive, "__self__", None), "transport", None)
        if transport is None:  # not under uvicorn: the closest we can do is a failed response
            raise ConnectionAbortedError("localhub fault: connection dropped")
        transport.abort()
        await asyncio.sleep(0.01)  # let the server notice the disconnect before the app returns


async def _send_error(send: Send, rule: FaultRule) -> None:
    message = f"localhub injected fault: HTTP {rule.status}"
    body = json.dumps({"error": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-error-message", message.encode()),
        (b"x-localhub-fault", rule.label.encode()),
    ]
    if rule.retry_after is not None:
        headers.append((b"retry-after", str(int(rule.retry_after)).encode()))
    await send({"type": "http.response.start", "status": rule.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
