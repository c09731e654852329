"""The output root: every file a stage writes under ``--root``, and the records that cross stages.

``OutputRoot`` owns every path under a root (docs/ARCHITECTURE.md documents each one; a test checks the
two agree). ``RunRecord`` is the typed ``run.json`` beside each kept epoch; ``iter_checkpoints`` is the one
walk over ``runs/*/epoch-NN`` and ``model_id`` the one spelling of a checkpoint's id, used by training,
evaluation, analysis, release and the pipeline. ``jobs.jsonl`` is training's manifest of its jobs and
their resolved base models, read by evaluation instead of the grid."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.io import file_lock, read_json, write_text

OUTPUTS_DIR = Path("outputs")
DEFAULT_GRID = "demo"
EPOCH_PREFIX = "epoch-"
RUNS = "runs"


def default_root(name: str | os.PathLike[str] = DEFAULT_GRID) -> Path:
    """The root every CLI uses when ``--root`` is not given: ``outputs/<grid or study name>``."""
    return OUTPUTS_DIR / Path(name).stem


def epoch_name(epoch: int) -> str:
    """``epoch-03``: the folder of a kept epoch, and the branch of its released repo."""
    return f"{EPOCH_PREFIX}{int(epoch):02d}"


def model_id(run_id: str, epoch: int) -> str:
    """The id of a fine-tuned checkpoint in every table: ``<run_id>/epoch-NN``."""
    return f"{run_id}/{epoch_name(epoch)}"


def base_model_dir_name(base_model: str) -> str:
    """``local/tiny-llama`` -> ``tiny-llama``: the folder of a locally built base under ``base_models/``."""
    return base_model.removeprefix("local/").rstrip("/").split("/")[-1]


@dataclass(frozen=True)
class RunRecord:
    """``runs/<run_id>/epoch-NN/run.json``: what one kept epoch was trained from (docs/training-run.md)."""

    job: dict[str, Any]  # the job record (``training.spec.Job.to_record()``)
    run_id: str
    epoch: int
    data_hash: str
    data_path: str
    num_samples: int
    seed: int
    base_model_path: str
    versions: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    wall_time_s: float | None = None

    @property
    def model_id(self) -> str:
        return model_id(self.run_id, self.epoch)

    @property
    def method(self) -> str:
        return str(self.job["method"])

    def identity(self) -> dict[str, Any]:
        """The identity columns of ``common.schema`` for this checkpoint's score rows."""
        return {
            "model_id": self.model_id,
            "run_id": self.run_id,
            "base_model": self.job["base_model"],
            "base_model_name": self.job["base_model_name"],
            "dataset": self.job["dataset"],
            "method": self.job["method"],
            "data_size": int(self.job["data_size"]),
            "epoch": int(self.epoch),
            "lr_schedule": self.job["lr_schedule"],
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**{**known, "epoch": int(data["epoch"])})

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> RunRecord:
        return cls.from_dict(read_json(path))


@dataclass(frozen=True)
class Checkpoint:
    """One kept epoch found under ``runs/``: its folder and its ``run.json``."""

    folder: Path
    record: RunRecord

    @property
    def model_id(self) -> str:
        return self.record.model_id

    @property
    def is_adapter(self) -> bool:
        return (self.folder / "adapter_config.json").exists()


@dataclass(frozen=True)
class OutputRoot:
    """Every path under one output root. Stages name files through it, never as strings."""

    path: Path

    def __init__(self, path: str | os.PathLike[str] | OutputRoot) -> None:
        object.__setattr__(self, "path", Path(path.path if isinstance(path, OutputRoot) else path))

    def __truediv__(self, other: str) -> Path:
        return self.path / other

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __str__(self) -> str:
        return str(self.path)

    # -- training
    @property
    def data_dir(self) -> Path:
        return self.path / "data"

    @property
    def data_keys_dir(self) -> Path:
        return self.data_dir / ".keys"

    def base_model_dir(self, base_model: str) -> Path:
        return self.path / "base_models" / base_model_dir_name(base_model)

    @property
    def manifest(self) -> Path:
        return self.path / "manifest.json"

    @property
    def jobs_manifest(self) -> Path:
        return self.path / "jobs.jsonl"

    def run_dir(self, run_id: str) -> Path:
        return self.path / RUNS / run_id

    def job_record(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "job.json"

    def trainer_dir(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "trainer"

    def epoch_dir(self, run_id: str, epoch: int) -> Path:
        return self.run_dir(run_id) / epoch_name(epoch)

    def run_record(self, run_id: str, epoch: int) -> Path:
        return self.epoch_dir(run_id, epoch) / "run.json"

    # -- job execution (jobs/executors.py writes these under the work folder it is given)
    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    @property
    def tasks_dir(self) -> Path:
        return self.path / "tasks"

    @property
    def slurm_dir(self) -> Path:
        return self.path / "slurm"

    @property
    def eval_work_dir(self) -> Path:
        return self.path / "eval_work"

    # -- evaluation
    @property
    def scores(self) -> Path:
        return self.path / "scores.parquet"

    @property
    def scores_lock(self) -> Path:
        return self.path / ".scores.lock"

    def submission_dir(self, request_id: str) -> Path:
        """The evaluation queue's download of one submitted model (``model/``, an adapter's ``base/``)."""
        return self.path / "submissions" / request_id

    def judged_answers(self, model: str, benchmark: str) -> Path:
        return self.path / "judged" / "answers" / model / f"{benchmark}.jsonl"

    def judged_judgments(self, model: str, benchmark: str, judge: str) -> Path:
        return self.path / "judged" / "judgments" / model / benchmark / f"{judge}.jsonl"

    @property
    def perplexity(self) -> Path:
        return self.path / "perplexity.parquet"

    @property
    def perplexity_samples(self) -> Path:
        return self.path / "perplexity_samples.parquet"

    @property
    def quality(self) -> Path:
        return self.path / "quality.json"

    # -- analysis
    @property
    def layers(self) -> Path:
        return self.path / "layers.parquet"

    @property
    def model_loglik(self) -> Path:
        return self.path / "model_loglik.parquet"

    @property
    def model_map(self) -> Path:
        return self.path / "model_map.parquet"

    @property
    def report_dir(self) -> Path:
        return self.path / "report"

    @property
    def report_tables_dir(self) -> Path:
        return self.report_dir / "tables"

    # -- release
    def merged_checkpoint_dir(self, checkpoint_id: str) -> Path:
        return self.path / "merged" / checkpoint_id

    @property
    def release_work_dir(self) -> Path:
        return self.path / ".release"

    @property
    def hub_dir(self) -> Path:
        return self.path / "hub"

    # -- walking the kept checkpoints
    def epoch_folders(self, run_id: str) -> list[Path]:
        """The kept-epoch folders of a run (complete or not), oldest first; staging folders are hidden."""
        folders = self.run_dir(run_id).glob(f"{EPOCH_PREFIX}*")
        return sorted(p for p in folders if p.is_dir() and not p.name.startswith("."))

    def run_ids(self) -> list[str]:
        runs = self.path / RUNS
        return sorted(p.name for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []

    def iter_checkpoints(self) -> Iterator[Checkpoint]:
        """Every complete kept epoch (its ``run.json``, written last, exists), by run id then epoch."""
        for run_id in self.run_ids():
            for folder in self.epoch_folders(run_id):
                if (folder / "run.json").exists():
                    yield Checkpoint(folder, RunRecord.read(folder / "run.json"))

    # -- jobs.jsonl: training's jobs and their resolved base models
    def read_jobs(self) -> list[dict[str, Any]]:
        """Job records (``Job.to_record()`` plus ``base_model_path``) in the order training wrote them."""
        if not self.jobs_manifest.exists():
            return []
        lines = self.jobs_manifest.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def record_jobs(self, records: Iterable[dict[str, Any]]) -> None:
        """Add or replace (by ``run_id``) job records; parallel writers are serialised by a lock."""
        with file_lock(self.jobs_manifest.with_name(self.jobs_manifest.name + ".lock")):
            merged = {record["run_id"]: record for record in self.read_jobs()}
            merged.update({record["run_id"]: record for record in records})
            lines = [json.dumps(record, sort_keys=True, default=str) for record in merged.values()]
            write_text(self.jobs_manifest, "".join(line + "\n" for line in lines))


def iter_checkpoints(root: str | os.PathLike[str] | OutputRoot) -> Iterator[Checkpoint]:
    return OutputRoot(root).iter_checkpoints()


# The paths an output root holds, as docs/ARCHITECTURE.md spells them (tests/test_layout.py checks both
# ways that this list, OutputRoot and the document agree).
DOCUMENTED_PATHS: dict[str, str] = {
    "data/<dataset>__<size>__<hash>.parquet": "data_dir",
    "data/.keys/<key>.json": "data_keys_dir",
    "base_models/<name>/": "base_model_dir",
    "manifest.json": "manifest",
    "jobs.jsonl": "jobs_manifest",
    "runs/<run_id>/": "run_dir",
    "runs/<run_id>/job.json": "job_record",
    "runs/<run_id>/trainer/": "trainer_dir",
    "runs/<run_id>/epoch-NN/": "epoch_dir",
    "runs/<run_id>/epoch-NN/run.json": "run_record",
    "logs/<run_id>.log": "logs_dir",
    "tasks/<run_id>.pkl": "tasks_dir",
    "slurm/<job id>/": "slurm_dir",
    "eval_work/": "eval_work_dir",
    "scores.parquet": "scores",
    ".scores.lock": "scores_lock",
    "submissions/<request_id>/": "submission_dir",
    "judged/answers/<model>/<benchmark>.jsonl": "judged_answers",
    "judged/judgments/<model>/<benchmark>/<judge>.jsonl": "judged_judgments",
    "perplexity.parquet": "perplexity",
    "perplexity_samples.parquet": "perplexity_samples",
    "quality.json": "quality",
    "layers.parquet": "layers",
    "model_loglik.parquet": "model_loglik",
    "model_map.parquet": "model_map",
    "report/": "report_dir",
    "report/tables/<name>.parquet": "report_tables_dir",
    "merged/<run_id>/epoch-NN/": "merged_checkpoint_dir",
    ".release/": "release_work_dir",
    "hub/": "hub_dir",
}
