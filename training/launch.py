"""Training on the shared job executors: grid jobs become tasks, ``<root>/manifest.json`` tracks them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from jobs.executors import RunSummary, SlurmOptions, Task, run_tasks
from jobs.worker import error_text, is_rank_zero
from training.manifest import record_jobs, set_status
from training.spec import Job
from training.trainer import is_finished, train_job


def train_task(job_record: dict, root: str) -> str:
    """Train one grid job and keep the manifest current (the executors' training task)."""
    job = Job.from_dict(job_record)
    report = set_status if is_rank_zero() else (lambda *args, **kwargs: None)
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
