"""Gains: a fine-tuned model's score minus its base model's score on the same benchmark, shots and metric."""

from __future__ import annotations

import pandas as pd

from analysis.common import MissingInputError, has_flags, task_labels
from common.catalog import PRETRAIN
from common.schema import IDENTITY_COLUMNS, conform

GAIN_COLUMNS: tuple[str, ...] = (
    *IDENTITY_COLUMNS,
    "benchmark",
    "shots",
    "metric",
    "task",
    "value",
    "base_value",
    "gain",
    "flagged",
    "flags",
    "base_flags",
)
_MATCH = ["base_model_name", "benchmark", "shots", "metric"]


def _with_base_name(scores: pd.DataFrame) -> pd.DataFrame:
    """Own runs may leave ``base_model_name`` empty; the base model id identifies the base then."""
    scores = scores.copy()
    scores["base_model_name"] = scores["base_model_name"].fillna(scores["base_model"])
    return scores


def split_base(scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(base model rows, fine-tuned rows)."""
    is_base = (scores["dataset"] == PRETRAIN) | (scores["method"] == "base")
    is_base = is_base.fillna(False).astype(bool)
    return scores[is_base], scores[~is_base]


def missing_base_models(scores: pd.DataFrame) -> list[str]:
    """Base models that have fine-tuned rows but no base-model (``pretrain``) rows to compare with."""
    scores = _with_base_name(conform(scores))
    base, tuned = split_base(scores)
    return sorted(set(tuned["base_model_name"].dropna()) - set(base["base_model_name"].dropna()))


def compute_gains(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per fine-tuned model score that has a matching base score; columns ``GAIN_COLUMNS``.

    Raises ``MissingInputError`` when the table has no base-model rows at all."""
    scores = _with_base_name(conform(scores))
    base, tuned = split_base(scores)
    if base.empty:
        raise MissingInputError(
            "the scores table has no base-model rows (dataset == 'pretrain', method == 'base', epoch 0): "
            "gains cannot be computed. Evaluate the base models too (`python -m evaluation run` on the "
            "base model) or import a table that includes them."
        )
    base = base.drop_duplicates(_MATCH).rename(columns={"value": "base_value", "flags": "base_flags"})
    merged = tuned.merge(base[[*_MATCH, "base_value", "base_flags"]], on=_MATCH, how="inner")
    merged["gain"] = merged["value"] - merged["base_value"]
    # ``flags``: the fine-tuned row's own; ``base_flags``: its base row's (they cancel in a paired
    # difference of two fine-tuned models, so comparisons look at ``flags`` only).
    merged["flags"] = merged["flags"].fillna("").astype(str)
    merged["base_flags"] = merged["base_flags"].fillna("").astype(str)
    merged["flagged"] = has_flags(merged["flags"]) | has_flags(merged["base_flags"])
    merged["task"] = task_labels(merged)
    merged = merged.dropna(subset=["gain"])
    return (
        merged[list(GAIN_COLUMNS)].sort_values(["base_model_name", "model_id", "task"]).reset_index(drop=True)
    )
