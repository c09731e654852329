"""``python -m evaluation perplexity``: perplexity of each grid job's prepared training set under its
base model, over response tokens and over the whole rendered sample. The jobs and their base models are
those training recorded in ROOT/jobs.jsonl (`python -m training prepare` or `run` writes it).

Writes ROOT/perplexity.parquet (one row per base model x dataset x scope) and
ROOT/perplexity_samples.parquet (the same per sample). Resumable: (base model, data hash) pairs already
in perplexity.parquet are skipped; each finished pair is written at once (atomically).

Examples:
  python -m evaluation perplexity --grid demo --root outputs/demo
  python -m evaluation perplexity --grid paper --only "base_model_name=Qwen*,data_size=1000" --batch-size 4
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from common.config import setting
from common.errors import InputError
from common.io import write_parquet
from common.layout import OutputRoot, default_root
from common.selection import select
from evaluation.perplexity import compute_perplexity, load_model
from training.data import prepare_job_data

PAIR_KEY = ["base_model", "data_hash"]


@dataclass(frozen=True)
class Options:
    grid: str = setting("demo", "the grid whose recorded jobs (ROOT/jobs.jsonl) are scored", metavar="NAME")
    only: str | None = setting(
        None, "keep jobs whose fields match KEY=GLOB[,KEY=GLOB...] (as in training)", metavar="FILTER"
    )
    root: Path | None = setting(None, "output root (default: outputs/<grid>)")
    batch_size: int = setting(8, "samples per forward pass")
    max_length: int = setting(2048, "truncate samples to this many tokens")
    device: str | None = setting(None, "torch device (default: cuda when available, else cpu)")


class NoRecordedJobsError(InputError):
    """The root's jobs.jsonl holds no job of the grid (training has not prepared it here)."""


def recorded_jobs(root: Path, grid: str, only: str | None) -> list[dict]:
    """The grid's job records of ROOT/jobs.jsonl that match ``only``."""
    layout = OutputRoot(root)
    jobs = [job for job in layout.read_jobs() if job["grid"] == Path(grid).stem]
    if not jobs:
        raise NoRecordedJobsError(
            f"{layout.jobs_manifest} records no job of grid {Path(grid).stem!r}; run "
            f"`python -m training prepare --grid {grid} --root {root}` first"
        )
    return select(jobs, only)


def _pairs(jobs: list[dict]) -> dict[str, list[dict]]:
    """base_model -> one job per distinct prepared set (dataset, size, seed, template)."""
    grouped: dict[str, dict[tuple, dict]] = defaultdict(dict)
    for job in jobs:
        key = (job["dataset"], job["data_size"], job["seed"], job["template"])
        grouped[job["base_model"]].setdefault(key, job)
    return {base: list(sets.values()) for base, sets in grouped.items()}


def _read(path: Path) -> pd.DataFrame | None:
    return pd.read_parquet(path) if path.exists() else None


def _merge_write(path: Path, new: pd.DataFrame) -> None:

    old = _read(path)
    if old is not None:
        done = set(map(tuple, new[PAIR_KEY].drop_duplicates().to_numpy()))
        old = old[[tuple(k) not in done for k in old[PAIR_KEY].to_numpy()]]
        new = pd.concat([old, new], ignore_index=True)
    write_parquet(path, new)


def _finished(root: Path) -> set[tuple[str, str]]:
    table = _read(OutputRoot(root).perplexity)
    if table is None:
        return set()
    scopes = table.groupby(PAIR_KEY)["scope"].nunique()
    return {key for key, n in scopes.items() if n == 2}


def run_base_model(base_model: str, jobs: list[dict], root: Path, options: Options) -> int:
    """Score every pending prepared set of one base model; returns how many pairs were computed."""
    from transformers import AutoTokenizer

    path = jobs[0]["base_model_path"]
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    finished = _finished(root)
    pending = [
        (job, data)
        for job in jobs
        if (base_model, (data := prepare_job_data(job, root, tokenizer)).data_hash) not in finished
    ]
    if not pending:
        return 0
    model, tokenizer, device = load_model(path, options.device)
    for job, data in pending:
        samples, aggregate = compute_perplexity(
            path,
            [data.path],
            batch_size=options.batch_size,
            device=device,
            max_length=options.max_length,
            base_model=base_model,
            base_model_name=job["base_model_name"],
            model_and_tokenizer=(model, tokenizer),
        )
        _merge_write(OutputRoot(root).perplexity_samples, samples)
        _merge_write(OutputRoot(root).perplexity, aggregate)
        for row in aggregate.itertuples():
            print(
                f"{job['base_model_name']:<20} {row.dataset:<22} {row.scope:<8} ppl {row.perplexity:10.3f} "
                f"({row.n_tokens} tokens)"
            )
    return len(pending)


def main(options: Options) -> int:
    root = options.root or default_root(options.grid)
    pairs = _pairs(recorded_jobs(root, options.grid, options.only))
    computed = sum(run_base_model(base, jobs, root, options) for base, jobs in pairs.items())
    total = sum(len(jobs) for jobs in pairs.values())
    print(
        f"{computed} (base model, dataset) pair(s) computed, {total - computed} already done; "
        f"results in {OutputRoot(root).perplexity}"
    )
    return 0
