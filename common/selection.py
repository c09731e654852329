"""``--only KEY=GLOB[,KEY=GLOB...]``: selecting job records, the same way in training and evaluation.

Different keys must all match; a repeated key means either (``method=full,method=lora``). Records are
job records (``Job.to_record()``, as in ``jobs.jsonl`` and ``run.json``)."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from common.errors import UsageError

Terms = dict[str, list[str]]


class SelectionError(UsageError):
    """An ``--only`` filter that is not KEY=GLOB or names an unknown key; carries the allowed keys."""

    def __init__(self, reason: str, value: str, allowed: Iterable[str]) -> None:
        self.reason, self.value, self.allowed = reason, value, sorted(allowed)
        text = f"--only: {reason}; allowed: {', '.join(self.allowed)}"
        close = difflib.get_close_matches(value, self.allowed, n=1)
        super().__init__(text + (f" (did you mean {close[0]!r}?)" if close else ""))


def parse_filter(only: str | None, keys: Iterable[str]) -> Terms:
    """``only`` as key -> glob alternatives; raises ``SelectionError`` naming the allowed ``keys``."""
    keys = set(keys)
    terms: Terms = {}
    for term in filter(None, (t.strip() for t in (only or "").split(","))):
        key, sep, pattern = term.partition("=")
        if not sep:
            raise SelectionError(f"term {term!r} is not KEY=GLOB", term, keys)
        if key.strip() not in keys:
            raise SelectionError(f"unknown key {key.strip()!r}", key.strip(), keys)
        terms.setdefault(key.strip(), []).append(pattern.strip())
    return terms


def matches(record: Mapping[str, Any], terms: Terms) -> bool:
    return all(
        any(fnmatch.fnmatchcase(str(record.get(key)), pattern) for pattern in patterns)
        for key, patterns in terms.items()
    )


def select(records: Sequence[Mapping[str, Any]], only: str | None) -> list[Mapping[str, Any]]:
    """The records matching ``only``; the keys allowed are those the records have."""
    terms = parse_filter(only, {key for record in records for key in record} | {"run_id"})
    return [record for record in records if matches(record, terms)]
