"""Run stage CLIs as child processes: each stage is isolated, shows its own progress, and a failure
names the stage (and, through the stage's own summary, the job) that broke."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from common.errors import StepFailed

# huggingface_hub refuses every request under HF_HUB_OFFLINE=1 (which offline users set), also to the
# staging Hub that the pipeline itself serves on 127.0.0.1. Stages that talk only to that server run with
# offline mode off; no traffic leaves the machine either way.
ONLINE_FOR_LOOPBACK = {"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0"}


class StageFailed(StepFailed):
    def __init__(self, stage: str, returncode: int, command: Sequence[str]):
        self.stage = stage
        super().__init__(
            f"stage '{stage}' failed (exit code {returncode}).\n  command: {' '.join(command)}\n"
            "  Its output above names the failing job. Fix it and re-run the same command: "
            "finished work is skipped."
        )


@dataclass(frozen=True)
class Stage:
    name: str
    args: tuple[str, ...]  # arguments after `python -m`
    env: dict[str, str] = field(default_factory=dict)

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", *self.args]


def run_stages(stages: Sequence[Stage]) -> None:
    total = len(stages)
    for index, stage in enumerate(stages, start=1):
        print(f"\n=== [{index}/{total}] {stage.name} ===\n$ python -m {' '.join(stage.args)}", flush=True)
        started = time.monotonic()
        result = subprocess.run(stage.command, env={**os.environ, **stage.env})
        if result.returncode != 0:
            raise StageFailed(stage.name, result.returncode, stage.command)
        print(f"=== {stage.name}: done in {time.monotonic() - started:.0f} s ===", flush=True)
