"""The manifests of an output root: ``jobs.jsonl`` (the jobs and their resolved base models, read by
evaluation) and the status manifest ``manifest.json``.


``{"jobs": {run_id: {"status": ..., "error": str?, "updated_at": iso}}}``. Parallel workers (local
processes, Slurm array tasks on a shared file system) update it through a read-modify-write held under an
exclusive ``fcntl`` lock on ``manifest.json.lock``; the file itself is replaced atomically, so readers never
see half a file."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from common.io import file_lock, read_json, write_json
from common.layout import OutputRoot
from training.base_models import base_model_location, resolve_base_model
from training.spec import Job

STATUSES = ("pending", "running", "done", "failed", "skipped")


def manifest_path(root: str | Path) -> Path:
    return OutputRoot(root).manifest


def read_manifest(root: str | Path) -> dict[str, Any]:
    path = manifest_path(root)
    return read_json(path) if path.exists() else {"jobs": {}}


def set_status(
    root: str | Path,
    run_ids: str | Iterable[str],
    status: str,
    error: str | None = None,
    keep_finished: bool = False,
) -> None:
    """Record ``status`` for one or many jobs. ``keep_finished`` leaves done/skipped entries alone
    (used when a grid run marks its jobs pending without forgetting what already finished)."""
    if status not in STATUSES:
        raise ValueError(f"unknown job status {status!r}; choose one of {list(STATUSES)}")
    ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    path = manifest_path(root)
    with file_lock(path.with_name(path.name + ".lock")):
        manifest = read_manifest(root)
        jobs = manifest.setdefault("jobs", {})
        for run_id in ids:
            if keep_finished and jobs.get(run_id, {}).get("status") in ("done", "skipped"):
                continue
            entry = {"status": status, "updated_at": now}
            if error is not None:
                entry["error"] = error
            jobs[run_id] = entry
        write_json(path, manifest)


def record_jobs(jobs: Sequence[Job], root: str | Path, build: bool = True) -> list[dict[str, Any]]:
    """Write the jobs into ``<root>/jobs.jsonl`` with ``base_model_path``, where the base model loads
    from; returns the records written. ``build``: build locally built and GGUF bases now (prepare);
    without it (run) each job builds its own, and a base that cannot be built fails only its jobs."""
    root = Path(root).resolve()  # the paths must hold from any working directory
    locate = resolve_base_model if build else base_model_location
    resolved: dict[str, str] = {}
    records = []
    for job in jobs:
        if job.base_model not in resolved:
            resolved[job.base_model] = str(locate(job, root))
        records.append({**job.to_record(), "base_model_path": resolved[job.base_model]})
    OutputRoot(root).record_jobs(records)
    return records


def statuses(root: str | Path) -> dict[str, str]:
    return {run_id: entry["status"] for run_id, entry in read_manifest(root).get("jobs", {}).items()}
