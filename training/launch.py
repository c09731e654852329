"""Training on the shared job executors: grid jobs become tasks, ``<root>/manifest.json`` tracks them.

One writer per run: the worker training a run holds an exclusive lock on ``<run dir>/.lock`` for as long
as it (or any process it forked) lives, and a second worker of the same run skips it instead of writing
the same files concurrently. Workers also die with the process that started them (``jobs.executors``)."""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from jobs.executors import RunSummary, SlurmOptions, Task, run_tasks
from jobs.worker import error_text, is_rank_zero
from training.manifest import record_jobs, set_status
from training.spec import Job
from training.trainer import is_finished, run_dir, train_job

log = logging.getLogger(__name__)
LOCK_NAME = ".lock"


@contextmanager
def run_lock(job: Job, root: str | Path) -> Iterator[int | None]:
    """Hold the run's lock for the block: yields None when acquired, else the pid of the holder (as far
    as it wrote it). The kernel releases it when the holder dies, whatever kills it."""
    path = run_dir(job, root) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            yield int(holder) if holder.isdigit() else -1
            return
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield None
    finally:
        os.close(fd)


def train_task(job_record: dict, root: str) -> str:
    """Train one grid job and keep the manifest current (the executors' training task)."""
    job = Job.from_dict(job_record)
    if not is_rank_zero():  # ranks of one multi-GPU launch train together; rank 0 holds the lock
        return _train(job, root, lambda *args, **kwargs: None)
    with run_lock(job, root) as holder:
        if holder is not None:
            log.warning(
                "%s is being trained by process %s (it holds %s): skipped", job.run_id, holder, LOCK_NAME
            )
            return "skipped"
        return _train(job, root, set_status)


def _train(job: Job, root: str, report) -> str:
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


def run_jobs(
    jobs: Sequence[Job],
    root: str | Path,
    executor: str = "local",
    workers: int = 1,
    slurm_options: SlurmOptions | None = None,
) -> RunSummary:
    """Train grid jobs under ``root``; ``root/manifest.json`` tracks each job's status."""
    root = Path(root).resolve()
    record_jobs(jobs, root, build=False)  # each job builds its base model; a failure stays its own
    set_status(root, [job.run_id for job in jobs], "pending", keep_finished=True)
    tasks = [Task(job.run_id, train_task, (job.to_record(), str(root)), job.resources) for job in jobs]
    summary = run_tasks(tasks, root, executor, workers, slurm_options)
    for result in summary.failed:  # also covers workers killed before they could record their failure
        set_status(root, result.key, "failed", error=result.error)
    return summary
