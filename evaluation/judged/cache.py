"""Append-only JSON-lines caches of answers and judgments, one file per (model, benchmark) for answers
and per (model, benchmark, judge) for judgments, under ``<root>/judged/``. Every record carries the
hash of everything that determined it (``key``), so a changed question, answer, prompt or judge
misses the cache and only that item is redone; interrupted runs keep every finished record."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from common.io import file_lock, stable_hash

CACHE_DIR = "judged"


def safe_name(text: str) -> str:
    """A file-name form of a model id or judge name (``run/epoch-01`` -> ``run__epoch-01``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.replace("/", "__")).strip("_") or "unnamed"


def record_key(*parts: Any) -> str:
    return stable_hash(parts, 20)


class JsonlCache:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._records: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a crash: the item is simply redone
                self._records[record["key"]] = record

    def get(self, key: str) -> dict[str, Any] | None:
        return self._records.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self._records

    def put(self, record: dict[str, Any]) -> None:
        self._records[record["key"]] = record
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(self.path.with_name(f".{self.path.name}.lock")), open(self.path, "a") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def answers_cache(root: Path, model_id: str, benchmark: str) -> JsonlCache:
    return JsonlCache(Path(root) / CACHE_DIR / "answers" / safe_name(model_id) / f"{benchmark}.jsonl")


def judgments_cache(root: Path, model_id: str, benchmark: str, judge: str) -> JsonlCache:
    folder = Path(root) / CACHE_DIR / "judgments" / safe_name(model_id) / benchmark
    return JsonlCache(folder / f"{safe_name(judge)}.jsonl")
