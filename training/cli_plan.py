"""``python -m training plan``: a grid's jobs as a readable table with totals, or as JSONL.

Examples:
  python -m training plan --grid paper
  python -m training plan --grid paper --only "block=size-study,base_model_name=Qwen*" --verbose
  python -m training plan --grid demo --format jsonl > jobs.jsonl
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from common.config import setting
from training.grid import GridSelection, models_count
from training.spec import Job


@dataclass(frozen=True)
class Options(GridSelection):
    format: Literal["table", "jsonl"] = setting(
        "table", "table: grouped summary with totals; jsonl: one Job.to_record() per line"
    )
    verbose: bool = setting(False, "table: one line per job instead of per group")


def _compact(values: Iterable[object]) -> str:
    unique = sorted(set(values), key=lambda v: (str(type(v)), v))
    return ",".join(str(v) for v in unique) if len(unique) <= 4 else f"{len(unique)} values"


def _kept(jobs: list[Job]) -> str:
    if all(job.checkpoint_epochs == (job.epochs,) for job in jobs):
        return "last"
    if all(job.checkpoint_epochs == tuple(range(1, job.epochs + 1)) for job in jobs):
        return "every epoch"
    return _compact(",".join(map(str, job.checkpoint_epochs)) for job in jobs)


def _group_rows(jobs: list[Job]) -> list[list[str]]:
    groups: dict[tuple[str, str], list[Job]] = defaultdict(list)
    for job in jobs:
        groups[(job.block, job.base_model_name)].append(job)
    return [
        [
            block,
            model,
            _compact(j.dataset for j in group),
            _compact(j.method for j in group),
            _compact(j.data_size for j in group),
            _compact(j.lr_schedule for j in group),
            _compact(j.epochs for j in group),
            _kept(group),
            str(len(group)),
            str(models_count(group)),
        ]
        for (block, model), group in groups.items()
    ]


def _job_rows(jobs: list[Job]) -> list[list[str]]:
    return [
        [
            job.run_id,
            job.base_model,
            str(job.learning_rate),
            str(job.batch_size),
            ",".join(map(str, job.checkpoint_epochs)),
        ]
        for job in jobs
    ]


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _breakdown(jobs: list[Job], title: str, key: Callable[[Job], str]) -> str:
    jobs_by, models_by = Counter(), Counter()
    for job in jobs:
        jobs_by[key(job)] += 1
        models_by[key(job)] += len(job.checkpoint_epochs)
    parts = [f"{name}: {jobs_by[name]} jobs / {models_by[name]} models" for name in jobs_by]
    return f"  by {title:<9} " + "; ".join(parts)


def render_table(jobs: list[Job], verbose: bool = False) -> str:
    if verbose:
        body = _table(["run_id", "base_model", "lr", "batch", "kept epochs"], _job_rows(jobs))
    else:
        body = _table(
            [
                "block",
                "model",
                "datasets",
                "methods",
                "sizes",
                "schedule",
                "epochs",
                "kept",
                "jobs",
                "models",
            ],
            _group_rows(jobs),
        )
    totals = [
        f"Total: {len(jobs)} training jobs, {models_count(jobs)} models (kept checkpoints)",
        _breakdown(jobs, "block", lambda j: j.block),
        _breakdown(jobs, "method", lambda j: j.method),
        _breakdown(jobs, "schedule", lambda j: j.lr_schedule),
    ]
    return body + "\n\n" + "\n".join(totals)


def main(options: Options) -> int:
    jobs = options.jobs()
    if options.format == "jsonl":
        for job in jobs:
            print(json.dumps(job.to_record(), sort_keys=False))
    else:
        print(render_table(jobs, options.verbose))
    return 0
