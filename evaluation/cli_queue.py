"""``python -m evaluation queue``: evaluate the models submitted through the Space's Submit tab.

Takes the pending requests of the requests dataset in submission order, marks each running, evaluates
it on the suite, publishes its scores to the results dataset (``submissions/<request_id>.parquet``) and
marks it finished or failed with the reason. A request left running by a killed or crashed run is taken
again once its heartbeat is older than --stale-after. Run it by hand, from cron, or in a loop; one pass
ends when no request is left. Needs HF_TOKEN with write access to both datasets (docs/space.md).

Examples:
  python -m evaluation queue --requests my-org/requests --results my-org/massive-sft-results --suite paper
  python -m evaluation queue --requests my-org/requests --results my-org/massive-sft-results \\
      --suite paper --executor slurm --slurm-partition gpu --slurm-setup 'source .venv/bin/activate'
  HF_ENDPOINT=http://127.0.0.1:8808 python -m evaluation queue --requests localhub/requests \\
      --results massive-sft-demo/massive-sft-results --suite demo --limit 2
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from common.config import setting
from common.errors import UsageError
from common.layout import default_root
from evaluation.cli_run import RunFlags
from evaluation.queue import QueueSettings, run_queue
from evaluation.runner import DEFAULT_EVALUATION_RESOURCES
from jobs.cli import SlurmSettings
from jobs.resources import Resources

DEFAULT_ENDPOINT = "https://huggingface.co"


@dataclass(frozen=True)
class Options:
    requests: str = setting(None, "requests dataset repo id (the Space's SPACE_REQUESTS_REPO)", required=True)
    results: str = setting(None, "results dataset repo id the scores are published to", required=True)
    endpoint: str | None = setting(None, "Hub endpoint (default: HF_ENDPOINT, else huggingface.co)")
    root: Path = setting(
        default_root("queue"), "work folder: downloads under ROOT/submissions/, scores in ROOT/scores.parquet"
    )
    suite: str = setting("demo", "suite name in configs/suites/ (demo, paper) or a path to a suite YAML")
    executor: Literal["local", "slurm"] = setting(
        "local", "local: a subprocess on this machine (its GPU when it has one); slurm: one job per request"
    )
    gpus: int = setting(1, "GPUs of each evaluation job (Slurm)")
    cpus: int = setting(DEFAULT_EVALUATION_RESOURCES.cpus, "CPUs of each evaluation job")
    mem_gb: int = setting(DEFAULT_EVALUATION_RESOURCES.mem_gb, "memory of each evaluation job (Slurm)")
    time_min: int = setting(
        DEFAULT_EVALUATION_RESOURCES.time_min, "time limit of each evaluation job (Slurm)"
    )
    max_requests: int | None = setting(None, "take at most this many requests in this pass (default: all)")
    heartbeat: float = setting(60.0, "seconds between two renewals of a running request's heartbeat")
    stale_after: float = setting(
        900.0, "seconds without a heartbeat after which a running request is taken again (its run died)"
    )
    max_attempts: int = setting(3, "a request stopped this many times without finishing is marked failed")
    keep_weights: bool = setting(False, "keep the downloaded models under ROOT/submissions/ after evaluation")
    run: RunFlags = setting(default_factory=RunFlags, inline=True)
    slurm: SlurmSettings = setting(default_factory=SlurmSettings, inline=True)

    def settings(self) -> QueueSettings:
        if self.stale_after <= self.heartbeat:
            raise UsageError(
                f"--stale-after {self.stale_after:g} must exceed --heartbeat {self.heartbeat:g}: a running "
                "request would look stopped between two heartbeats"
            )
        if self.max_attempts < 1:
            raise UsageError("--max-attempts must be at least 1")
        endpoint = (self.endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
        return QueueSettings(
            requests_repo=self.requests,
            results_repo=self.results,
            endpoint=endpoint,
            root=self.root,
            suite=self.suite,
            run=self.run.run_options(),
            executor=self.executor,
            slurm=self.slurm.slurm_options(),
            resources=Resources(gpus=self.gpus, cpus=self.cpus, mem_gb=self.mem_gb, time_min=self.time_min),
            heartbeat_s=self.heartbeat,
            stale_after_s=self.stale_after,
            max_attempts=self.max_attempts,
            max_requests=self.max_requests,
            keep_weights=self.keep_weights,
        )


def main(options: Options) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    summary = run_queue(options.settings())
    print(summary.render())
    return 0  # a failed request is the submitter's: it is recorded with its reason, the queue worked
