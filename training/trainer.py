"""One SFT job with TRL's ``SFTTrainer``: full fine-tuning or LoRA, per-epoch checkpoints, resume.

Layout under ``<root>/runs/<run_id>/`` (docs/ARCHITECTURE.md):

* ``job.json``: the job record; a folder holding another config's record is never overwritten;
* ``trainer/checkpoint-<step>/``: Trainer checkpoints saved at every epoch end (only the latest is kept)
  so that a killed job resumes where it stopped;
* ``epoch-NN/`` (+ ``run.json``): each kept epoch, exported from the checkpoint of that epoch into a temp
  sibling and renamed, so a folder that exists is always complete.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from common.errors import MassiveSFTError
from common.io import read_json, write_json
from common.layout import OutputRoot, RunRecord
from training.base_models import resolve_base_model
from training.data import prepare_job_data
from training.sft import build_trainer
from training.spec import Job

log = logging.getLogger(__name__)

WALL_TIME_FILE = "massive_sft_wall_time.json"
# Checkpoint files that only serve resuming; everything else in a checkpoint is the model/adapter + tokenizer.
_RESUME_ONLY = (
    "optimizer.pt",
    "scheduler.pt",
    "scaler.pt",
    "trainer_state.json",
    "training_args.bin",
    "rng_state",
    "global_step",
    "latest",
    "zero_to_fp32.py",
    WALL_TIME_FILE,
)
VERSIONED_LIBRARIES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "tokenizers")


class RunConflictError(MassiveSFTError, RuntimeError):
    """The run folder belongs to a different configuration."""


def run_dir(job: Job, root: str | Path) -> Path:
    return OutputRoot(root).run_dir(job.run_id)


def kept_epoch_dirs(job: Job, root: str | Path) -> list[Path]:
    return [OutputRoot(root).epoch_dir(job.run_id, epoch) for epoch in job.checkpoint_epochs]


def is_finished(job: Job, root: str | Path) -> bool:
    """Every kept epoch exists with its run.json (written last, so its presence means complete)."""
    return all((path / "run.json").exists() for path in kept_epoch_dirs(job, root))


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _record_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [
        f"{key}: {old.get(key)!r} (in folder) != {new.get(key)!r} (this job)"
        for key in keys
        if old.get(key) != new.get(key)
    ]


def claim_run_dir(job: Job, root: str | Path) -> Path:
    """Check the folder belongs to this job (or is new) and record the job in it."""
    folder = run_dir(job, root)
    record_path = OutputRoot(root).job_record(job.run_id)
    record = job.to_record()
    if record_path.exists():
        existing = read_json(record_path)
        # The grid name and cluster resources do not change the weights (they are outside the run id).
        ignore = ("grid", "resources", "block")
        differences = _record_differences(
            {k: v for k, v in existing.items() if k not in ignore},
            {k: v for k, v in record.items() if k not in ignore},
        )
        if differences:
            raise RunConflictError(
                f"{folder} holds a run of a different configuration; refusing to overwrite it.\n  "
                + "\n  ".join(differences)
                + f"\nFix: train into a new output root (--root), or delete {folder} to retrain it."
            )
    if _is_main_process():
        write_json(record_path, record)
    return folder


def library_versions() -> dict[str, str]:

    versions = {}
    for name in VERSIONED_LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@dataclass(frozen=True)
class RunContext:
    """What every run.json of a job shares."""

    job: Job
    root: OutputRoot
    data_path: str
    data_hash: str
    num_samples: int
    base_model_path: str

    @property
    def folder(self) -> Path:
        return self.root.run_dir(self.job.run_id)

    @property
    def trainer_dir(self) -> Path:
        return self.root.trainer_dir(self.job.run_id)


def _per_epoch(log_history: list[dict[str, Any]], key: str) -> dict[str, float]:
    return {str(round(entry["epoch"])): float(entry[key]) for entry in log_history if key in entry}


def epoch_metrics(state: dict[str, Any], epoch: int) -> dict[str, Any]:
    history = state.get("log_history", [])
    train = _per_epoch(history, "loss")
    held_out = _per_epoch(history, "eval_loss")
    metrics: dict[str, Any] = {
        "train_loss_per_epoch": train,
        "global_step": state.get("global_step"),
        "train_loss": train.get(str(epoch)),
    }
    if held_out:
        metrics.update(held_out_loss_per_epoch=held_out, held_out_loss=held_out.get(str(epoch)))
    return metrics


def export_epoch(context: RunContext, checkpoint: Path) -> Path | None:
    """Copy a kept epoch's model (or adapter) and tokenizer out of its Trainer checkpoint."""
    state = read_json(checkpoint / "trainer_state.json")
    epoch = round(state["epoch"])
    target = context.root.epoch_dir(context.job.run_id, epoch)
    if epoch not in context.job.checkpoint_epochs or (target / "run.json").exists():
        return None
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(
        checkpoint,
        staging,
        ignore=lambda _dir, names: [name for name in names if name.startswith(_RESUME_ONLY)],
    )
    wall = checkpoint / WALL_TIME_FILE
    record = RunRecord(
        job=context.job.to_record(),
        run_id=context.job.run_id,
        epoch=epoch,
        data_hash=context.data_hash,
        data_path=context.data_path,
        num_samples=context.num_samples,
        seed=context.job.seed,
        base_model_path=context.base_model_path,
        versions=library_versions(),
        metrics=epoch_metrics(state, epoch),
        wall_time_s=read_json(wall)["wall_time_s"] if wall.exists() else None,
    )
    write_json(staging / "run.json", record.to_dict())
    shutil.rmtree(target, ignore_errors=True)  # a stale folder without run.json from an older layout
    staging.replace(target)
    log.info("%s: epoch %d/%d kept in %s", context.job.run_id, epoch, context.job.epochs, target)
    return target


def complete_checkpoints(trainer_dir: Path) -> list[Path]:
    """Checkpoints whose trainer_state.json (written after weights and optimizer) exists, oldest first."""
    found = [path for path in trainer_dir.glob("checkpoint-*") if (path / "trainer_state.json").exists()]
    return sorted(found, key=lambda path: int(path.name.rsplit("-", 1)[1]))


def export_missing_epochs(context: RunContext) -> None:
    """Export kept epochs whose checkpoint exists but whose export was interrupted by a kill."""
    if _is_main_process():
        for checkpoint in complete_checkpoints(context.trainer_dir):
            export_epoch(context, checkpoint)


def train_job(job: Job, root: str | Path) -> list[Path]:
    """Train ``job`` into ``<root>/runs/<run_id>``; resumes a killed run, skips a finished one."""
    from transformers import AutoTokenizer

    root = Path(root)
    claim_run_dir(job, root)
    if is_finished(job, root):
        log.info("%s: already finished, skipping", job.run_id)
        return kept_epoch_dirs(job, root)
    base_model_path = str(_resolve_base(job, root))
    tokenizer = AutoTokenizer.from_pretrained(base_model_path)
    prepared = prepare_job_data(job.to_record(), root, tokenizer)
    context = RunContext(
        job=job,
        root=OutputRoot(root),
        data_path=str(prepared.path),
        data_hash=prepared.data_hash,
        num_samples=int(prepared.num_samples),
        base_model_path=base_model_path,
    )
    export_missing_epochs(context)
    if not is_finished(job, root):
        checkpoints = complete_checkpoints(context.trainer_dir)
        resume = checkpoints[-1] if checkpoints else None
        if resume is not None:
            log.info("%s: resuming from %s", job.run_id, resume)
        trainer = build_trainer(job, context, tokenizer, resume, on_checkpoint=export_epoch)
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        export_missing_epochs(context)
    missing = [path for path in kept_epoch_dirs(job, root) if not (path / "run.json").exists()]
    if missing and _is_main_process():
        raise RuntimeError(
            f"{job.run_id}: training ended without kept epochs {[p.name for p in missing]}; "
            f"check checkpoint_epochs <= epochs ({job.epochs})"
        )
    return kept_epoch_dirs(job, root)


def _resolve_base(job: Job, root: Path) -> Path | str:

    return resolve_base_model(job, root)
