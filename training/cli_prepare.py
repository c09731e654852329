"""``python -m training prepare``: load, preprocess, subsample and render every training set a grid needs,
into ``<root>/data/<dataset>__<size>__<hash>.parquet`` (cached: prepared sets are not rebuilt).

Examples:
  python -m training prepare --grid demo --root outputs/demo
  python -m training prepare --grid paper --only "block=core-single" --root outputs/paper
  # without Hub access: point a dataset (or all three FLAN splits, key flan2021) at a local copy
  python -m training prepare --grid paper --source lima=/data/lima/train.jsonl --source flan2021=/data/flan
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from common.config import setting
from common.layout import OutputRoot, default_root
from training.data import PreparedData, prepare_dataset
from training.grid import GridSelection
from training.loaders import LOADERS, DataError
from training.manifest import record_jobs
from training.spec import Job


@dataclass(frozen=True)
class Options(GridSelection):
    root: Path | None = setting(None, f"output root (default: {default_root('<grid>')})")
    source: tuple[str, ...] = setting(
        (),
        "read DATASET from a local file/folder (or another Hub id) instead of its Hub source; "
        "repeatable; the key flan2021 covers the three FLAN splits",
        repeat=True,
        metavar="DATASET=PATH",
    )


@dataclass(frozen=True, order=True)
class DataSpec:
    """What identifies a prepared set for the paper template (the chat template also needs a tokenizer)."""

    dataset: str
    data_size: int
    seed: int


def source_keys() -> list[str]:
    """Names ``--source`` accepts: every dataset with a Hub source, and shared sources (flan2021)."""
    return sorted({key for loader in LOADERS.values() for key in loader.override_keys})


def parse_sources(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    sources, valid = {}, source_keys()
    for item in items:
        name, sep, path = (part.strip() for part in item.partition("="))
        if not sep or not name or not path:
            raise DataError(f"--source {item!r}: expected DATASET=PATH, DATASET one of {', '.join(valid)}")
        if name not in valid:
            raise DataError(f"--source {item!r}: unknown source {name!r}; valid: {', '.join(valid)}")
        sources[name] = path
    return sources


def data_specs(jobs: list[Job]) -> tuple[list[DataSpec], list[Job]]:
    """Distinct paper-template sets, and the chat-template jobs (prepared by ``run`` with the model's
    tokenizer, which needs the base model)."""
    specs = sorted(
        {DataSpec(job.dataset, job.data_size, job.seed) for job in jobs if job.template == "paper"}
    )
    return specs, [job for job in jobs if job.template != "paper"]


def prepare_all(specs: list[DataSpec], root: Path, sources: dict[str, str]) -> list[PreparedData]:
    prepared = []
    progress = tqdm(specs, desc="preparing datasets", unit="set")
    for spec in progress:
        progress.set_postfix_str(f"{spec.dataset} {spec.data_size}")
        prepared.append(prepare_dataset(spec.dataset, spec.data_size, root, seed=spec.seed, sources=sources))
    return prepared


def main(options: Options) -> int:
    sources = parse_sources(options.source)
    jobs = options.jobs()
    root = options.root or default_root(options.grid)
    record_jobs(jobs, root)
    specs, chat_jobs = data_specs(jobs)
    prepared = prepare_all(specs, root, sources)
    for spec, data in zip(specs, prepared, strict=True):
        print(f"{spec.dataset:<24} {spec.data_size:>6}  {data.num_samples:>6} rows  {data.path}")
    if chat_jobs:
        print(
            f"{len(chat_jobs)} job(s) use the chat template: `python -m training run` prepares their data "
            f"with the base model's tokenizer."
        )
    print(f"{len(prepared)} training set(s) ready under {OutputRoot(root).data_dir}")
    return 0
