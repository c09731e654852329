"""What one job asks of the machine or cluster that runs it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resources:
    """What one job asks of a cluster (used by the Slurm executor)."""

    gpus: int = 1
    cpus: int = 8
    mem_gb: int = 64
    time_min: int = 24 * 60
    partition: str | None = None
    deepspeed_config: str | None = None  # file name under configs/deepspeed/
    # Per-device batch; the job's batch_size is reached with gradient accumulation. None: the whole batch.
    micro_batch_size: int | None = None
