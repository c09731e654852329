"""The Slurm options every stage's ``run`` command takes with ``--executor slurm``."""

from __future__ import annotations

import argparse

from jobs.executors import SLURM_CLUSTERS, SlurmOptions


def add_slurm_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    group = parser.add_argument_group("Slurm (with --executor slurm)")
    group.add_argument("--slurm-partition", default=None, help="partition for jobs whose recipe names none")
    group.add_argument(
        "--slurm-account", default=None, help="account charged for the jobs (sbatch --account)"
    )
    group.add_argument("--slurm-qos", default=None, help="quality of service (sbatch --qos)")
    group.add_argument(
        "--slurm-array-parallelism", type=int, default=64, help="at most this many array tasks run at once"
    )
    group.add_argument(
        "--slurm-setup",
        action="append",
        default=[],
        help="shell line run before each task, e.g. 'source .venv/bin/activate' (repeatable)",
    )
    group.add_argument(
        "--slurm-cluster",
        choices=SLURM_CLUSTERS,
        default="slurm",
        help="'local' runs the same submitit path without Slurm, on this machine (debugging)",
    )
    group.add_argument(
        "--slurm-poll",
        type=float,
        default=10.0,
        help="seconds between two looks at the jobs' states (each one sacct call)",
    )
    return group


def slurm_options(args: argparse.Namespace) -> SlurmOptions:
    return SlurmOptions(
        partition=args.slurm_partition,
        account=args.slurm_account,
        qos=args.slurm_qos,
        array_parallelism=args.slurm_array_parallelism,
        cluster=args.slurm_cluster,
        setup=tuple(args.slurm_setup),
        poll_s=args.slurm_poll,
    )
