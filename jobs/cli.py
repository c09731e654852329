"""The Slurm settings every stage's ``run`` command takes with ``--executor slurm`` (an inline block of
its options: ``--slurm-partition``, ``--set slurm_account=...``, ``slurm_qos:`` in ``--config``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from common.config import setting
from jobs.executors import SlurmOptions


@dataclass(frozen=True)
class SlurmSettings:
    slurm_partition: str | None = setting(None, "Slurm: partition for jobs whose recipe names none")
    slurm_account: str | None = setting(None, "Slurm: account charged for the jobs (sbatch --account)")
    slurm_qos: str | None = setting(None, "Slurm: quality of service (sbatch --qos)")
    slurm_array_parallelism: int = setting(64, "Slurm: at most this many array tasks run at once")
    slurm_setup: tuple[str, ...] = setting(
        (),
        "Slurm: shell line run before each task, e.g. 'source .venv/bin/activate' (repeatable)",
        repeat=True,
        metavar="LINE",
    )
    slurm_cluster: Literal["slurm", "local"] = setting(
        "slurm", "Slurm: 'local' runs the same submitit path without Slurm, on this machine (debugging)"
    )
    slurm_poll: float = setting(10.0, "Slurm: seconds between two looks at the jobs' states (one sacct call)")

    def slurm_options(self) -> SlurmOptions:
        return SlurmOptions(
            partition=self.slurm_partition,
            account=self.slurm_account,
            qos=self.slurm_qos,
            array_parallelism=self.slurm_array_parallelism,
            cluster=self.slurm_cluster,
            setup=tuple(self.slurm_setup),
            poll_s=self.slurm_poll,
        )
