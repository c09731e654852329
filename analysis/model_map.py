"""The model map (the study's use of Oyama et al., ACL 2025): each model is represented by its
log-likelihood of every text of one fixed text set; the vectors are centred per text (the mean over models
is subtracted, so what remains is how a model differs from the others), and projected to two dimensions.

Oyama et al. show that the squared Euclidean distance between centred log-likelihood vectors approximates
the KL divergence between the models (times the number of texts), so models that predict text alike lie
close together. The study draws the map with t-SNE; we use PCA, which is deterministic and gives the share
of variance each axis explains. A text's log-likelihood is the sum of its tokens' log-probabilities under
the model (all tokens but the first), computed by the evaluation stage's batched perplexity code."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from analysis.common import MissingInputError
from evaluation.perplexity import compute_perplexity, load_model

if TYPE_CHECKING:
    from evaluation.runner import EvalModel

LOGLIK_COLUMNS = ("model_id", "texts_hash", "text_id", "loglik", "n_tokens")
MAP_COLUMNS = (
    "model_id",
    "base_model",
    "method",
    "dataset",
    "epoch",
    "x",
    "y",
    "x_variance",
    "y_variance",
    "mean_loglik",
)  # x_variance, y_variance: share of the centred variance along each axis
BASE_METHOD = "base"


def label(model: EvalModel) -> dict[str, Any]:
    """The identity columns of ``model`` on the map (the evaluation stage's identity, as in scores)."""
    return {key: model.identity[key] for key in ("model_id", "base_model", "method", "dataset", "epoch")}


def text_set(texts: dict[str, list[str]], per_dataset: int) -> pd.DataFrame:
    """The fixed texts of the map: ``per_dataset`` evenly spaced texts of each source, in a stable order.
    Columns ``id``, ``dataset``, ``prompt`` (empty: the whole text is scored) and ``text``."""
    rows = []
    for source in sorted(texts):
        items = texts[source]
        step = max(1, len(items) // per_dataset)
        rows += [
            {"id": f"{source}-{i}", "dataset": source, "prompt": "", "text": items[i]}
            for i in range(0, len(items), step)
        ][:per_dataset]
    if not rows:
        raise MissingInputError("the model map needs texts; none were given")
    return pd.DataFrame(rows)


def texts_hash(texts: pd.DataFrame) -> str:
    return hashlib.sha256("\x00".join(texts["id"] + "\x01" + texts["text"]).encode("utf-8")).hexdigest()[:16]


def load(model: EvalModel, device: str | None = None) -> tuple[Any, Any, str]:
    """(model, tokenizer, device); a LoRA adapter is applied to its base through peft, never merged."""

    if not model.is_adapter:
        return load_model(model.path, device)
    from peft import PeftModel

    base, tokenizer, device = load_model(model.base_path, device)
    return PeftModel.from_pretrained(base, model.path).eval(), tokenizer, device


def text_loglik(
    model: EvalModel, texts_file: Path, batch_size: int = 8, device: str | None = None
) -> pd.DataFrame:
    """One row per text: the model's log-likelihood of it and the number of tokens scored."""

    loaded, tokenizer, device = load(model, device)
    samples, _ = compute_perplexity(
        model.path,
        [texts_file],
        batch_size=batch_size,
        device=device,
        model_and_tokenizer=(loaded, tokenizer),
        progress=False,
    )
    full = samples[samples["scope"] == "full"]
    return pd.DataFrame(
        {
            "model_id": model.model_id,
            "text_id": full["sample_id"].to_numpy(),
            "loglik": -(full["mean_nll"] * full["n_tokens"]).to_numpy(),
            "n_tokens": full["n_tokens"].to_numpy(),
        }
    )


def loglik_matrix(loglik: pd.DataFrame) -> pd.DataFrame:
    """Models x texts; texts some model could not score (no token) are dropped."""
    matrix = loglik.pivot_table(index="model_id", columns="text_id", values="loglik", aggfunc="first")
    return matrix.dropna(axis=1)


def project(matrix: pd.DataFrame) -> tuple[pd.DataFrame, list[float]]:
    """(coordinates ``model_id``, ``x``, ``y``; share of the centred variance explained by each axis)."""
    if len(matrix) < 3 or matrix.shape[1] < 2:
        raise MissingInputError(
            f"the model map needs at least 3 models and 2 texts scored by all of them; "
            f"got {len(matrix)} models and {matrix.shape[1]} texts"
        )
    centred = matrix.to_numpy(dtype=float) - matrix.to_numpy(dtype=float).mean(axis=0, keepdims=True)
    left, singular, _ = np.linalg.svd(centred, full_matrices=False)
    total = float((singular**2).sum())
    axes = left[:, :2] * singular[:2]
    # A fixed sign, so reruns draw the same map: the model farthest out on an axis lies on its positive
    # side (the scores of centred data sum to zero, so their sum's sign would be rounding noise).
    farthest = axes[np.abs(axes).argmax(axis=0), range(axes.shape[1])]
    axes *= np.where(farthest < 0, -1.0, 1.0)
    explained = [float(s**2 / total) if total > 0 else math.nan for s in singular[:2]]
    coords = pd.DataFrame({"model_id": matrix.index, "x": axes[:, 0], "y": axes[:, 1]})
    return coords, explained


def model_map(loglik: pd.DataFrame, labels: pd.DataFrame) -> tuple[pd.DataFrame, list[float]]:
    """The map table (``MAP_COLUMNS``) of the models in ``labels`` from their log-likelihoods."""
    matrix = loglik_matrix(loglik[loglik["model_id"].isin(labels["model_id"])])
    coords, explained = project(matrix)
    mean = matrix.mean(axis=1).rename("mean_loglik").reset_index()
    frame = labels.merge(coords, on="model_id").merge(mean, on="model_id")
    frame = frame.assign(x_variance=explained[0], y_variance=explained[1])
    return frame[list(MAP_COLUMNS)].sort_values("model_id", ignore_index=True), explained


@dataclass(frozen=True)
class MapSummary:
    within_base: float  # mean distance between two models of the same base model (NaN: no such pair)
    between_base: float  # mean distance between models of different base models (NaN: one base model)
    neighbour_agreement: float  # share of models whose nearest model on the map has the same base model
    chance_agreement: float  # that share if base models were assigned at random (same group sizes)
    to_base: dict[str, float]  # method -> median distance of its checkpoints to their base model

    @property
    def separation(self) -> float:
        """How many times farther apart models of different base models are than models of the same one."""
        return self.between_base / self.within_base if self.within_base > 0 else math.nan

    @property
    def clusters_by_base(self) -> bool:
        """Nearest neighbours agree on the base model at least halfway from chance to always."""
        return self.neighbour_agreement >= (1 + self.chance_agreement) / 2


def summarise(frame: pd.DataFrame) -> MapSummary:
    """Distances on the map: do models cluster by base model, and how far does each method move a model?"""
    points = frame[["x", "y"]].to_numpy(dtype=float)
    distance = np.linalg.norm(points[:, None] - points[None], axis=-1)
    bases = frame["base_model"].to_numpy()
    same = (bases[:, None] == bases[None]) & ~np.eye(len(frame), dtype=bool)
    different = bases[:, None] != bases[None]
    nearest = np.where(np.eye(len(frame), dtype=bool), np.inf, distance).argmin(axis=1)
    sizes = frame["base_model"].value_counts().to_numpy()
    pairs = len(frame) * (len(frame) - 1)
    base_point = {row.base_model: (row.x, row.y) for row in frame.itertuples() if row.method == BASE_METHOD}
    to_base: dict[str, list[float]] = {}
    for row in frame.itertuples():
        if row.method != BASE_METHOD and row.base_model in base_point:
            bx, by = base_point[row.base_model]
            to_base.setdefault(row.method, []).append(math.hypot(row.x - bx, row.y - by))
    return MapSummary(
        _mean(distance[same]),
        _mean(distance[different]),
        float((bases[nearest] == bases).mean()),
        float((sizes * (sizes - 1)).sum() / pairs),
        {method: float(np.median(values)) for method, values in sorted(to_base.items())},
    )


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else math.nan
