"""Perplexity of prepared training sets under a base model, per sample and aggregated.

Two scopes per sample: ``response`` (the tokens after the rendered prompt, the ones SFT trains on) and
``full`` (every token of the rendered sample that the model predicts, i.e. all but the first). Tokenisation
follows the trainer: ``text`` and ``prompt`` are tokenised separately and the response tokens are the
positions from ``len(prompt_ids)`` on. No EOS is appended: we measure the data, not the training target.

Samples are sorted by length and batched with right padding; padded positions are masked out of the
attention and of the loss, and position ids count real tokens only, so a padded batch gives the same
numbers as one sample at a time (tests/test_perplexity.py checks this to 1e-4). Aggregates are
token-weighted: ``mean_nll = sum(nll) / sum(tokens)``, ``perplexity = exp(mean_nll)``."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from common.errors import InputError

SCOPES = ("response", "full")
IDENTITY = ("base_model", "base_model_name", "dataset", "data_size", "data_hash")
AGGREGATE_COLUMNS = (*IDENTITY, "scope", "n_samples", "n_tokens", "mean_nll", "perplexity")
SAMPLE_COLUMNS = (*IDENTITY, "scope", "sample_id", "n_tokens", "mean_nll", "perplexity", "truncated")
DEFAULT_MAX_LENGTH = 2048


class PerplexityError(InputError):
    """Input that cannot be scored (empty prepared set, missing columns, unreadable model)."""


@dataclass(frozen=True)
class Encoded:
    sample_id: str
    ids: list[int]
    response_start: int  # first position whose token belongs to the response
    truncated: bool


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def encode(tokenizer: Any, sample_id: str, prompt: str, text: str, max_length: int) -> Encoded:
    ids = tokenizer(text)["input_ids"]
    prompt_ids = tokenizer(prompt)["input_ids"]
    # A BPE merge across the prompt/response boundary can change the last prompt token; the shared
    # prefix is then the prompt (the trainer's split differs by at most that token).
    start = max(1, min(len(prompt_ids), _common_prefix(ids, prompt_ids)))
    return Encoded(sample_id, ids[:max_length], start, len(ids) > max_length)


def load_model(model_path: str | os.PathLike[str], device: str | None = None, dtype: Any = None):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    # float32 on CPU (exact comparisons); bfloat16 on accelerators (7-9B models, as trained).
    dtype = dtype or (torch.float32 if device == "cpu" else torch.bfloat16)
    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=dtype).to(device).eval()
    return model, tokenizer, device


def _batches(encoded: list[Encoded], batch_size: int) -> list[list[Encoded]]:
    """Length-sorted (longest first: an out-of-memory error shows up on the first batch)."""
    ordered = sorted(encoded, key=lambda e: len(e.ids), reverse=True)
    return [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]


def _token_nll(model: Any, batch: list[Encoded], device: str, pad_id: int):
    """Per-token NLL of predicting position t from positions < t, shape (batch, longest - 1), masked."""
    import torch

    longest = max(len(e.ids) for e in batch)
    ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), longest), dtype=torch.long)
    for row, item in enumerate(batch):
        ids[row, : len(item.ids)] = torch.tensor(item.ids)
        mask[row, : len(item.ids)] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, :-1]
        nll = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), ids[:, 1:], reduction="none")
    return (nll * mask[:, 1:]).double().cpu().numpy()


def _sample_sums(item: Encoded, nll_row: np.ndarray) -> dict[str, tuple[float, int]]:
    """scope -> (sum of NLL, tokens). Target position t sits at index t - 1 of ``nll_row``."""
    length = len(item.ids)
    start = min(item.response_start, length)
    return {
        "full": (float(nll_row[: length - 1].sum()), length - 1),
        "response": (float(nll_row[start - 1 : length - 1].sum()), length - start),
    }


def _sample_rows(item: Encoded, sums: dict[str, tuple[float, int]], identity: dict[str, Any]) -> list[dict]:
    rows = []
    for scope in SCOPES:
        total, tokens = sums[scope]
        mean = total / tokens if tokens else math.nan
        rows.append(
            {
                **identity,
                "scope": scope,
                "sample_id": item.sample_id,
                "n_tokens": tokens,
                "mean_nll": mean,
                "perplexity": math.exp(mean) if tokens else math.nan,
                "truncated": item.truncated,
            }
        )
    return rows


def aggregate(samples: pd.DataFrame) -> pd.DataFrame:
    """Token-weighted mean NLL and perplexity per (identity, scope)."""
    samples = samples.assign(nll_sum=samples["mean_nll"].fillna(0) * samples["n_tokens"])
    grouped = (
        samples.groupby(list(IDENTITY) + ["scope"], dropna=False, sort=False)
        .agg(n_samples=("sample_id", "size"), n_tokens=("n_tokens", "sum"), nll_sum=("nll_sum", "sum"))
        .reset_index()
    )
    grouped["mean_nll"] = grouped["nll_sum"] / grouped["n_tokens"].replace(0, np.nan)
    grouped["perplexity"] = np.exp(grouped["mean_nll"])
    return grouped[list(AGGREGATE_COLUMNS)]


def _read_samples(prepared_paths: Sequence[str | os.PathLike[str]]) -> list[tuple[Path, pd.DataFrame]]:
    frames = []
    for path in map(Path, prepared_paths):
        frame = pd.read_parquet(path)
        missing = {"id", "dataset", "prompt", "text"} - set(frame.columns)
        if missing:
            raise PerplexityError(
                f"{path} lacks columns {sorted(missing)}: not a prepared training set "
                "(python -m training prepare writes them)"
            )
        if frame.empty:
            raise PerplexityError(f"{path} has no samples")
        frames.append((path, frame))
    return frames


def _identity(path: Path, frame: pd.DataFrame, base_model: str, base_model_name: str) -> dict[str, Any]:
    # Prepared files are named <dataset>__<size>__<hash>.parquet (docs/ARCHITECTURE.md).
    parts = path.stem.split("__")
    size = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else len(frame)
    return {
        "base_model": base_model,
        "base_model_name": base_model_name,
        "dataset": str(frame["dataset"].iloc[0]),
        "data_size": size,
        "data_hash": parts[-1] if len(parts) == 3 else path.stem,
    }


def compute_perplexity(
    model_path: str | os.PathLike[str],
    prepared_paths: Sequence[str | os.PathLike[str]],
    batch_size: int = 8,
    device: str | None = None,
    max_length: int = DEFAULT_MAX_LENGTH,
    base_model: str | None = None,
    base_model_name: str | None = None,
    model_and_tokenizer: tuple[Any, Any] | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-sample and aggregated perplexity of each prepared set under the model at ``model_path``.

    ``base_model``/``base_model_name`` label the rows (default: the path and its folder name);
    ``model_and_tokenizer`` reuses an already loaded pair (then ``device`` must be where it lives)."""
    if batch_size < 1:
        raise PerplexityError(f"batch_size must be >= 1, got {batch_size}")
    if model_and_tokenizer is None:
        model, tokenizer, device = load_model(model_path, device)
    else:
        (model, tokenizer), device = model_and_tokenizer, device or "cpu"
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    base_model = base_model or str(model_path)
    base_model_name = base_model_name or Path(str(model_path)).name
    rows: list[dict] = []
    for path, frame in _read_samples(prepared_paths):
        identity = _identity(path, frame, base_model, base_model_name)
        encoded = [encode(tokenizer, str(r.id), r.prompt, r.text, max_length) for r in frame.itertuples()]
        batches = _batches(encoded, batch_size)
        for batch in tqdm(
            batches, desc=f"perplexity {identity['dataset']}", unit="batch", disable=not progress
        ):
            nll = _token_nll(model, batch, device, pad_id)
            for item, row in zip(batch, nll, strict=True):
                rows.extend(_sample_rows(item, _sample_sums(item, row), identity))
    samples = pd.DataFrame(rows, columns=list(SAMPLE_COLUMNS))
    return samples, aggregate(samples)


def reference_perplexity(
    model: Any, tokenizer: Any, prompt: str, text: str, max_length: int = DEFAULT_MAX_LENGTH
) -> dict[str, tuple[float, int]]:
    """The plain computation, one sample, no padding: scope -> (sum of NLL, tokens). For tests and the
    benchmark; deliberately independent of the batching code."""
    import torch

    item = encode(tokenizer, "", prompt, text, max_length)
    ids = torch.tensor([item.ids], device=model.device)
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0, :-1].float()
    log_probs = torch.log_softmax(logits, dim=-1)
    nll = -log_probs[torch.arange(len(item.ids) - 1), ids[0, 1:]].double()
    start = item.response_start
    return {
        "full": (float(nll.sum()), len(item.ids) - 1),
        "response": (float(nll[start - 1 :].sum()), len(item.ids) - start),
    }
