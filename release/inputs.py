"""What a release is made of, read from an output root and checked before anything is uploaded.

Two modes:

* ``weights``: ``runs/<run_id>/epoch-NN/`` folders (full models or PEFT adapters, each with ``run.json``)
  and ``base_models/<name>/`` for locally built bases;
* ``results-only`` (the real study): no weights, only ``scores.parquet`` imported from the authors'
  released table; models get card-only repos pointing at ``external_weights_url``.

Models are grouped into one repo per (base model, dataset, method, data size, schedule); each epoch is a
branch ``epoch-NN`` and ``main`` is the final epoch."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from common.errors import InputError
from common.gains import GAIN_COLUMNS, NoBaseRowsError, compute_gains
from common.io import read_json
from common.layout import OutputRoot, RunRecord, epoch_name
from common.schema import read_scores
from release.config import ReleaseConfig, render_repo_id

GROUP_KEYS = ("base_model", "base_model_name", "dataset", "method", "data_size", "lr_schedule")
FULL_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


class ReleaseInputError(InputError):
    """The output root cannot be released as it is; the message names the file and the fix."""


@dataclass
class Checkpoint:
    epoch: int
    model_id: str
    folder: Path | None  # None in the results-only mode
    record: dict[str, Any] = field(default_factory=dict)  # run.json
    variant: int = 1  # >1: a repeated row of the released table ("<model_id>#2"), kept on its own branch

    @property
    def revision(self) -> str:
        return epoch_name(self.epoch) + (f"-v{self.variant}" if self.variant > 1 else "")

    @property
    def is_adapter(self) -> bool:
        return self.folder is not None and (self.folder / "adapter_config.json").exists()


@dataclass
class ModelGroup:
    repo_id: str
    identity: dict[str, Any]  # GROUP_KEYS
    checkpoints: list[Checkpoint]  # sorted by epoch
    base_repo: str  # where the base model lives on the Hub (published here or upstream)
    run_id: str | None = None

    @property
    def final(self) -> Checkpoint:
        return self.checkpoints[-1]

    @property
    def job(self) -> dict[str, Any]:
        return self.final.record.get("job", {})


@dataclass
class BaseModelRelease:
    name: str  # base_model_name
    base_model: str  # the id used in scores/jobs ("local/tiny-llama")
    folder: Path
    repo_id: str


@dataclass
class ReleaseInputs:
    root: Path
    mode: str  # "weights" | "results-only"
    groups: list[ModelGroup]
    bases: list[BaseModelRelease]
    scores: pd.DataFrame
    gains: pd.DataFrame  # common.gains over the scores: published, and read by the cards

    def locations(self) -> dict[str, tuple[str, str]]:
        """model_id -> (repo_id, revision) for every released model, base models included."""
        found = {c.model_id: (g.repo_id, c.revision) for g in self.groups for c in g.checkpoints}
        for group in self.groups:
            found.setdefault(group.identity["base_model_name"], (group.base_repo, "main"))
        found.update({b.name: (b.repo_id, "main") for b in self.bases})
        return found


def _has_weights(folder: Path) -> bool:
    names = ADAPTER_WEIGHTS if (folder / "adapter_config.json").exists() else FULL_WEIGHTS
    return any((folder / name).exists() for name in names) or any(folder.glob("model-*.safetensors"))


def read_checkpoint(folder: Path) -> Checkpoint:
    record_path = folder / "run.json"
    if not record_path.exists():
        raise ReleaseInputError(
            f"checkpoint {folder} has no run.json (an interrupted export?); re-run "
            "`python -m training run` to finish it, or delete the folder"
        )
    if not _has_weights(folder):
        raise ReleaseInputError(
            f"checkpoint {folder} has no weights (expected one of "
            f"{FULL_WEIGHTS[:1] + ADAPTER_WEIGHTS[:1]}); re-export it with training"
        )
    record = read_json(record_path)
    typed = RunRecord.from_dict(record)
    return Checkpoint(typed.epoch, typed.model_id, folder, record)


def _identity(job: dict[str, Any]) -> dict[str, Any]:
    return {key: job[key] for key in GROUP_KEYS}


def _template_values(config: ReleaseConfig, identity: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    extra = {k: job.get(k, "") for k in ("epochs", "seed", "run_id", "grid")}
    return {"namespace": config.namespace, **identity, **extra}


def _base_repo(config: ReleaseConfig, root: Path, base_model: str, name: str) -> tuple[str, Path | None]:
    """A locally built base (``local/<name>`` or a folder under base_models/) is published here."""
    folder = OutputRoot(root).base_model_dir(base_model)
    if base_model.startswith("local/") or (folder / "config.json").exists():
        repo = render_repo_id(
            config.base_repo_template, {"namespace": config.namespace, "base_model_name": name}
        )
        return repo, folder
    return base_model, None


def _unique(groups: list[ModelGroup]) -> None:
    seen: dict[str, ModelGroup] = {}
    for group in groups:
        if group.repo_id in seen:
            raise ReleaseInputError(
                f"two models map to repo {group.repo_id}: {seen[group.repo_id].identity} and {group.identity} "
                f"(runs {seen[group.repo_id].run_id}, {group.run_id}); add a distinguishing field such as "
                "{epochs} or {seed} to repo_template"
            )
        seen[group.repo_id] = group


def discover_weights(root: Path, config: ReleaseConfig) -> tuple[list[ModelGroup], list[BaseModelRelease]]:
    groups: list[ModelGroup] = []
    bases: dict[str, BaseModelRelease] = {}
    layout = OutputRoot(root)
    for run_id in layout.run_ids():
        folders = layout.epoch_folders(run_id)
        if not folders:
            continue  # a run still training or that failed: it has no kept epoch to release
        checkpoints = sorted((read_checkpoint(p) for p in folders), key=lambda c: c.epoch)
        job = checkpoints[-1].record["job"]
        identity = _identity(job)
        base_repo, base_folder = _base_repo(config, root, job["base_model"], job["base_model_name"])
        if base_folder is not None and config.include.base_models:
            if not (base_folder / "config.json").exists():
                raise ReleaseInputError(
                    f"base model folder {base_folder} is missing (needed to publish "
                    f"{job['base_model']}); rebuild it with `python -m training run`"
                )
            bases[base_repo] = BaseModelRelease(
                job["base_model_name"], job["base_model"], base_folder, base_repo
            )
        repo = render_repo_id(config.repo_template, _template_values(config, identity, job))
        groups.append(ModelGroup(repo, identity, checkpoints, base_repo, run_id))
    return groups, sorted(bases.values(), key=lambda b: b.repo_id)


def _variant(model_id: str) -> int:
    _, sep, number = model_id.rpartition("#")
    return int(number) if sep and number.isdigit() else 1


def discover_results_only(scores: pd.DataFrame, config: ReleaseConfig) -> list[ModelGroup]:
    tuned = scores[scores["method"] != "base"]
    identity_rows = tuned.drop_duplicates("model_id")
    groups = []
    for key, rows in identity_rows.groupby(list(GROUP_KEYS), dropna=False, sort=True):
        identity = {
            k: (None if pd.isna(v) else (int(v) if k == "data_size" else v))
            for k, v in zip(GROUP_KEYS, key, strict=True)
        }
        # The importer names repeated metadata "<id>#2"; each repeat keeps its own branch (epoch-NN-v2).
        checkpoints = sorted(
            (
                Checkpoint(int(r.epoch), str(r.model_id), None, variant=_variant(str(r.model_id)))
                for r in rows.itertuples()
            ),
            key=lambda c: (c.epoch, -c.variant),
        )
        if len({c.revision for c in checkpoints}) != len(checkpoints):
            raise ReleaseInputError(
                f"results rows of {identity} repeat an epoch: each (base model, dataset, "
                "method, size, schedule, epoch) must be one model id; check the table"
            )
        repo = render_repo_id(config.repo_template, _template_values(config, identity, {}))
        groups.append(ModelGroup(repo, identity, checkpoints, identity["base_model"] or ""))
    return groups


def check_scores(scores: pd.DataFrame, groups: list[ModelGroup], bases: list[BaseModelRelease]) -> None:
    """Every results row must belong to a released model (or to the base model of one)."""
    released = {c.model_id for g in groups for c in g.checkpoints}
    base_names = {g.identity["base_model_name"] for g in groups} | {b.name for b in bases}
    tuned = scores["method"] != "base"
    orphan = scores[
        (tuned & ~scores["model_id"].isin(released)) | (~tuned & ~scores["base_model_name"].isin(base_names))
    ]
    if len(orphan):
        examples = sorted(orphan["model_id"].unique())[:5]
        raise ReleaseInputError(
            f"{orphan['model_id'].nunique()} model(s) in scores.parquet are not in the release, e.g. {examples}: "
            "their checkpoints are missing under runs/ (restore them), or drop their rows from scores.parquet"
        )


def gains_or_empty(scores: pd.DataFrame) -> pd.DataFrame:
    """The gains table of ``scores`` (``common.gains``); empty when there are no base-model rows."""
    try:
        return compute_gains(scores)
    except NoBaseRowsError:
        return pd.DataFrame({column: pd.Series(dtype="object") for column in GAIN_COLUMNS})


def load_inputs(root: str | Path, config: ReleaseConfig) -> ReleaseInputs:
    """Read and check everything under ``root``; raises ReleaseInputError before any network use."""
    root = Path(root)
    if not root.is_dir():
        raise ReleaseInputError(
            f"output root {root} does not exist; pass --root of a trained/evaluated study"
        )
    scores = read_scores(OutputRoot(root).scores)
    groups, bases = discover_weights(root, config)
    mode = "weights"
    if not groups and len(scores):
        mode, groups = "results-only", discover_results_only(scores, config)
    if not groups and not bases:
        raise ReleaseInputError(
            f"nothing to release under {root}: no runs/*/epoch-NN checkpoints and no "
            "scores.parquet; train (`python -m training run`) or import the released table"
        )
    _unique(groups)
    check_scores(scores, groups, bases)
    return ReleaseInputs(root, mode, groups, bases, scores, gains_or_empty(scores))
