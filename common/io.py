"""Atomic writes and content hashes: a crash never leaves a half-written file behind."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path next to ``target``; it replaces ``target`` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates files readable by their owner only; published data should be readable by all.
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_directory(target: str | os.PathLike[str], keep: tuple[str, ...] = ()) -> Iterator[Path]:
    """Yield a temp folder next to ``target``; it replaces ``target`` (a folder) only if the block
    succeeds, so a failure leaves the previous folder, or none, and never a half-written one. ``keep``:
    subfolders of the previous ``target`` copied in first (caches)."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{target} exists and is not a folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        for name in keep:
            if (target / name).is_dir():
                shutil.copytree(target / name, tmp / name)
        yield tmp
        tmp.chmod(0o777 & ~_umask())
        old = target.with_name(f".{target.name}.{os.getpid()}.old")
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | os.PathLike[str], text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def write_json(target: str | os.PathLike[str], obj: Any) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_parquet(target: str | os.PathLike[str], frame: pd.DataFrame) -> None:
    with atomic_path(target) as tmp:
        frame.to_parquet(tmp, index=False)


def replace_rows(target: str | os.PathLike[str], rows: pd.DataFrame, key: str) -> None:
    """Write ``rows`` into the parquet table at ``target`` (created if absent), replacing the rows whose
    ``key`` value they carry; atomic, so a crash leaves the previous table."""
    path = Path(target)
    if path.exists():
        old = pd.read_parquet(path)
        rows = pd.concat([old[~old[key].isin(set(rows[key]))], rows], ignore_index=True)
    write_parquet(path, rows)


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def stable_hash(obj: Any, length: int = 12) -> str:
    """Hash of a JSON-serialisable object that does not depend on key order."""
    payload = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:length]


@contextmanager
def file_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Exclusive inter-process lock on ``path`` (created if needed), e.g. for read-modify-write of a
    shared JSON file by parallel workers; released when the block ends or the process dies."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
