"""``python -m training run``: train a grid's jobs, resumable, locally or on Slurm.

Examples:
  python -m training run --grid demo --root outputs/demo
  python -m training run --grid demo --only "method=lora,dataset=demo_facts" --workers 2
  python -m training run --grid paper --executor slurm --slurm-partition gpu --slurm-account myproj
  python -m training run --grid paper --executor slurm --dry-run   # print the sbatch scripts only
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from common.config import setting
from common.layout import OutputRoot, default_root
from jobs.cli import SlurmSettings
from jobs.executors import SlurmOptions, sbatch_script
from training.grid import GridSelection
from training.launch import run_jobs


@dataclass(frozen=True)
class Options(GridSelection):
    root: Path | None = setting(None, f"output root (default: {default_root('<grid>')})")
    executor: Literal["local", "slurm"] = setting(
        "local", "local: one subprocess per job; slurm: submitit job arrays"
    )
    workers: int = setting(1, "local executor: jobs run in parallel (one GPU each when GPUs exist)")
    slurm: SlurmSettings = setting(default_factory=SlurmSettings, inline=True)
    dry_run: bool = setting(False, "Slurm: print the sbatch script of each job array instead of submitting")


def _print_sbatch(jobs, root: Path, options: SlurmOptions) -> None:
    groups: dict = {}
    for job in jobs:
        groups.setdefault(job.resources, []).append(job)
    for resources, group in groups.items():
        print(f"# array of {len(group)} jobs, e.g. {group[0].run_id}")
        print(sbatch_script(resources, options, OutputRoot(root).slurm_dir / "%j", len(group)))


def main(options: Options) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    jobs = options.jobs()
    root = options.root or default_root(options.grid)
    slurm = options.slurm.slurm_options()
    if options.dry_run:
        _print_sbatch(jobs, root.resolve(), slurm)
        return 0
    print(f"training {len(jobs)} jobs of grid {options.grid!r} into {root} ({options.executor} executor)")
    summary = run_jobs(jobs, root, executor=options.executor, workers=options.workers, slurm_options=slurm)
    print(summary)
    print(f"manifest: {OutputRoot(root).manifest}")
    return 0 if summary.ok else 1
