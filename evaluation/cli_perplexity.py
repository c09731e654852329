"""``python -m evaluation perplexity``: perplexity of each grid job's prepared training set under its
base model, over response tokens and over the whole rendered sample.

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
from common.paths import DEFAULT_OUTPUT_ROOT
from training.grid import GridSelection

PAIR_KEY = ["base_model", "data_hash"]


@dataclass(frozen=True)
class Options(GridSelection):
    root: Path | None = setting(None, "output root (default: outputs/<grid>)")
    batch_size: int = setting(8, "samples per forward pass")
    max_length: int = setting(2048, "truncate samples to this many tokens")
    device: str | None = setting(None, "torch device (default: cuda when available, else cpu)")


def _pairs(jobs) -> dict[str, list]:
    """base_model -> one job per distinct prepared set (dataset, size, seed, template)."""
    grouped: dict[str, dict[tuple, object]] = defaultdict(dict)
    for job in jobs:
        grouped[job.base_model].setdefault((job.dataset, job.data_size, job.seed, job.template), job)
    return {base: list(sets.values()) for base, sets in grouped.items()}


def _read(path: Path) -> pd.DataFrame | None:
    return pd.read_parquet(path) if path.exists() else None


def _merge_write(path: Path, new: pd.DataFrame) -> None:
    from common.io import write_parquet

    old = _read(path)
    if old is not None:
        done = set(map(tuple, new[PAIR_KEY].drop_duplicates().to_numpy()))
        old = old[[tuple(k) not in done for k in old[PAIR_KEY].to_numpy()]]
        new = pd.concat([old, new], ignore_index=True)
    write_parquet(path, new)


def _finished(root: Path) -> set[tuple[str, str]]:
    table = _read(root / "perplexity.parquet")
    if table is None:
        return set()
    scopes = table.groupby(PAIR_KEY)["scope"].nunique()
    return {key for key, n in scopes.items() if n == 2}


def _prepared(job, root: Path, tokenizer):
    from training.data import prepare_dataset

    return prepare_dataset(
        job.dataset,
        job.data_size,
        root,
        seed=job.seed,
        template=job.template,
        tokenizer=tokenizer if job.template == "chat" else None,
    )


def run_base_model(base_model: str, jobs: list, root: Path, options: Options) -> int:
    """Score every pending prepared set of one base model; returns how many pairs were computed."""
    from transformers import AutoTokenizer

    from evaluation.perplexity import compute_perplexity, load_model
    from training.base_models import resolve_base_model

    path = resolve_base_model(jobs[0], root)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    finished = _finished(root)
    pending = [
        (job, data)
        for job in jobs
        if (base_model, (data := _prepared(job, root, tokenizer)).data_hash) not in finished
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
            base_model_name=job.base_model_name,
            model_and_tokenizer=(model, tokenizer),
        )
        _merge_write(root / "perplexity_samples.parquet", samples)
        _merge_write(root / "perplexity.parquet", aggregate)
        for row in aggregate.itertuples():
            print(
                f"{job.base_model_name:<20} {row.dataset:<22} {row.scope:<8} ppl {row.perplexity:10.3f} "
                f"({row.n_tokens} tokens)"
            )
    return len(pending)


def main(options: Options) -> int:
    root = options.root or DEFAULT_OUTPUT_ROOT / Path(options.grid).stem
    pairs = _pairs(options.jobs())
    computed = sum(run_base_model(base, jobs, root, options) for base, jobs in pairs.items())
    total = sum(len(jobs) for jobs in pairs.values())
    print(
        f"{computed} (base model, dataset) pair(s) computed, {total - computed} already done; "
        f"results in {root / 'perplexity.parquet'}"
    )
    return 0
