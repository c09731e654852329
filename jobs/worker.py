"""Worker process: ``python -m jobs.worker TASK.pkl`` runs one pickled :class:`~jobs.executors.Task`
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
from jobs.executors import die_with_parent, run_task


def is_rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m jobs.worker TASK.pkl", file=sys.stderr)
        return 2
    die_with_parent(os.getppid())  # also the ranks under `accelerate launch`, whose parent is the launcher
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    task_file = Path(argv[0])
    task = pickle.loads(task_file.read_bytes())
    result_file = task_file.with_suffix(".result.json")
    try:
        result = {"status": run_task(task)}
    except Exception as error:
        traceback.print_exc()
        result = {"status": "failed", "error": error_text(error)}
    if is_rank_zero():
        write_json(result_file, result)
    return 0 if result["status"] != "failed" else 1


if __name__ == "__main__":
    sys.exit(main())
