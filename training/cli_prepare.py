"""``python -m training prepare``: load, preprocess, subsample and render every training set a grid needs,
into ``<root>/data/<dataset>__<size>__<hash>.parquet`` (cached: prepared sets are not rebuilt).

Examples:
  python -m training prepare --grid demo --root outputs/demo
  python -m training prepare --grid paper --only "block=core-single" --root outputs/paper
  # without Hub access: point a dataset (or all three FLAN splits, key flan2021) at a local copy
  python -m training prepare --grid paper --source lima=/data/lima/train.jsonl --source flan2021=/data/flan
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from common.layout import OutputRoot, default_root
from training.base_models import BaseModelError
from training.cli_plan import add_grid_arguments, load_jobs
from training.data import PreparedData, prepare_dataset
from training.grid import GridError
from training.loaders import DataError
from training.manifest import record_jobs
from training.spec import Job


@dataclass(frozen=True, order=True)
class DataSpec:
    """What identifies a prepared set for the paper template (the chat template also needs a tokenizer)."""

    dataset: str
    data_size: int
    seed: int


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_grid_arguments(parser)
    parser.add_argument(
        "--root", type=Path, default=None, help=f"output root (default: {default_root('<grid>')})"
    )
    parser.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="DATASET=PATH",
        help="read DATASET from a local file/folder (or another Hub id) instead of its Hub "
        "source; repeatable; the key flan2021 covers the three FLAN splits",
    )


def parse_sources(items: list[str]) -> dict[str, str]:
    sources = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise DataError(f"--source {item!r}: expected DATASET=PATH")
        sources[name.strip()] = path.strip()
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


def main(args: argparse.Namespace) -> int:
    try:
        jobs = load_jobs(args)
        sources = parse_sources(args.source)
        root = args.root or default_root(args.grid)
        record_jobs(jobs, root)
        specs, chat_jobs = data_specs(jobs)
        prepared = prepare_all(specs, root, sources)
    except (GridError, DataError, BaseModelError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for spec, data in zip(specs, prepared, strict=True):
        print(f"{spec.dataset:<24} {spec.data_size:>6}  {data.num_samples:>6} rows  {data.path}")
    if chat_jobs:
        print(
            f"{len(chat_jobs)} job(s) use the chat template: `python -m training run` prepares their data "
            f"with the base model's tokenizer."
        )
    print(f"{len(prepared)} training set(s) ready under {OutputRoot(root).data_dir}")
    return 0
