"""``python -m training run``: train a grid's jobs, resumable, locally or on Slurm.

Examples:
  python -m training run --grid demo --root outputs/demo
  python -m training run --grid demo --only "method=lora,dataset=demo_facts" --workers 2
  python -m training run --grid paper --executor slurm --slurm-partition gpu --slurm-account myproj
  python -m training run --grid paper --executor slurm --dry-run   # print the sbatch scripts only
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from common.paths import DEFAULT_OUTPUT_ROOT
from jobs.cli import add_slurm_arguments, slurm_options


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--grid", required=True, help="recipe name under configs/grids/ (demo, paper, ...) or a path"
    )
    parser.add_argument(
        "--root", type=Path, default=None, help=f"output root (default: {DEFAULT_OUTPUT_ROOT}/<grid>)"
    )
    parser.add_argument(
        "--only",
        default=None,
        help="run only jobs matching KEY=GLOB[,KEY=GLOB...] over the job record, "
        "e.g. 'method=lora,base_model_name=tiny-*'",
    )
    parser.add_argument(
        "--executor",
        choices=("local", "slurm"),
        default="local",
        help="local: one subprocess per job; slurm: submitit job arrays",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="local executor: jobs run in parallel (one GPU each when GPUs exist)",
    )
    slurm = add_slurm_arguments(parser)
    slurm.add_argument(
        "--dry-run",
        action="store_true",
        help="print the sbatch script of each job array instead of submitting",
    )


def _print_sbatch(jobs, root: Path, options) -> None:
    from jobs.executors import sbatch_script

    groups: dict = {}
    for job in jobs:
        groups.setdefault(job.resources, []).append(job)
    for resources, group in groups.items():
        print(f"# array of {len(group)} jobs, e.g. {group[0].run_id}")
        print(sbatch_script(resources, options, root / "slurm" / "%j", len(group)))


def main(args: argparse.Namespace) -> int:
    from training.grid import GridError, filter_jobs, load_grid
    from training.launch import run_jobs

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        jobs = filter_jobs(load_grid(args.grid), args.only)
    except GridError as error:
        print(f"error: {error}")
        return 2
    if not jobs:
        print(
            f"error: no job of grid {args.grid!r} matches --only {args.only!r}; "
            "see `python -m training plan --grid NAME` for the job records"
        )
        return 2
    root = args.root or DEFAULT_OUTPUT_ROOT / Path(args.grid).stem
    options = slurm_options(args)
    if args.dry_run:
        _print_sbatch(jobs, root.resolve(), options)
        return 0
    print(f"training {len(jobs)} jobs of grid {args.grid!r} into {root} ({args.executor} executor)")
    summary = run_jobs(jobs, root, executor=args.executor, workers=args.workers, slurm_options=options)
    print(summary)
    print(f"manifest: {root / 'manifest.json'}")
    return 0 if summary.ok else 1
