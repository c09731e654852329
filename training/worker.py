"""Worker process: ``python -m training.worker TASK.pkl`` runs one pickled :class:`~training.executors.Task`
and writes ``TASK.result.json`` (``{"status": ..., "error": ...}``) for the parent. Under ``accelerate
launch`` every rank runs the task and only rank 0 reports."""

from __future__ import annotations

import logging
import os
import pickle
import sys
import traceback
from pathlib import Path

from common.io import write_json


def _is_rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def train_task(job_record: dict, root: str) -> str:
    """Train one grid job and keep the manifest current (the executors' training task)."""
    from training.manifest import set_status
    from training.spec import Job
    from training.trainer import is_finished, train_job

    job = Job.from_dict(job_record)
    report = set_status if _is_rank_zero() else (lambda *args, **kwargs: None)
    if is_finished(job, root):
        report(root, job.run_id, "skipped")
        return "skipped"
    report(root, job.run_id, "running")
    try:
        train_job(job, root)
    except BaseException as error:
        report(root, job.run_id, "failed", error=error_text(error))
        raise
    report(root, job.run_id, "done")
    return "done"


def main(argv: list[str] | None = None) -> int:
    from training.executors import run_task

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m training.worker TASK.pkl", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    task_file = Path(argv[0])
    task = pickle.loads(task_file.read_bytes())
    result_file = task_file.with_suffix(".result.json")
    try:
        result = {"status": run_task(task)}
    except Exception as error:
        traceback.print_exc()
        result = {"status": "failed", "error": error_text(error)}
    if _is_rank_zero():
        write_json(result_file, result)
    return 0 if result["status"] != "failed" else 1


if __name__ == "__main__":
    sys.exit(main())
