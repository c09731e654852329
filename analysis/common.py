"""Helpers shared by the analyses: the error for missing inputs, task labels, safe statistics."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from common.catalog import ALL_MIXTURE, LEAVE_ONE_OUT_PREFIX, PERCENT_RANGE, PRETRAIN, score_range
from common.errors import InputError


class MissingInputError(InputError):
    """An analysis cannot run because an input it needs is absent; the message names it and the fix."""


def is_single_dataset(datasets: pd.Series) -> pd.Series:
    """True for one SFT dataset; False for the base model, the mixture and leave-one-out runs."""
    datasets = datasets.astype("string")
    return (
        ((datasets != PRETRAIN) & (datasets != ALL_MIXTURE) & ~datasets.str.startswith(LEAVE_ONE_OUT_PREFIX))
        .fillna(False)
        .astype(bool)
    )


def headline_tasks(gains: pd.DataFrame) -> list[str]:
    """One task per benchmark, for figures: the shot setting with the most models (ties: fewer shots);
    for judged chat benchmarks the ``total``/``win_rate`` score rather than a category."""
    counts = (
        gains.dropna(subset=["gain"])
        .groupby(["benchmark", "shots", "metric", "task"], observed=True)
        .size()
        .rename("n")
        .reset_index()
    )
    counts = counts[~counts["benchmark"].isin(["mtbench"]) | (counts["metric"] == "total")]
    counts = counts.sort_values(["benchmark", "n", "shots"], ascending=[True, False, True])
    return counts.drop_duplicates("benchmark")["task"].astype(str).tolist()


def _finite_pairs(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def correlation(x, y, method: str = "pearson", min_n: int = 3) -> tuple[float, float, int]:
    """(coefficient, p-value, n) on the pairs where both are finite; NaN when fewer than ``min_n``
    pairs or either side is constant (a correlation is undefined there, not zero)."""
    x, y = _finite_pairs(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    n = len(x)
    if n < max(min_n, 2) or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan, n
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.pearsonr(x, y) if method == "pearson" else stats.spearmanr(x, y)
    return float(result[0]), float(result[1]), n


def sign_consistency(values: pd.Series) -> float:
    """Share of non-zero values that have the majority sign (NaN when there are none)."""
    values = values.dropna()
    values = values[values != 0]
    if values.empty:
        return math.nan
    positive = float((values > 0).mean())
    return max(positive, 1 - positive)


def flagged_note(n_flagged: int, n_total: int, what: str = "scores") -> str:
    """The sentence every section adds when its result rests on rows the importer flagged."""
    if n_flagged == 0:
        return ""
    return (
        f"Caution: {n_flagged} of {n_total} {what} used here come from rows with data-quality flags "
        f"(see Data quality); the result depends on them."
    )


# Flags (evaluation/quality.py FLAG_CODES) that mark a row whose scores were copied from another
# model's: such a row cannot take part in a paired comparison.
COPY_FLAGS = ("shared_scores", "duplicate_scores")
# A base-model cell whose few-shot score is near zero while its zero-shot score is normal: the base
# model fails the answer format, so gains there measure format learning.
FORMAT_FLAG = "format_failure"


def is_percent_task(task: str) -> bool:
    """True for a task scored in percent (0-100); MT-Bench (1-10) is not."""
    return score_range(str(task).rsplit("-", 1)[0]) == PERCENT_RANGE


def flag_mask(flags: pd.Series, codes: tuple[str, ...] | str) -> pd.Series:
    """True where the ";"-separated flags contain any of ``codes``."""
    codes = (codes,) if isinstance(codes, str) else codes
    parts = flags.fillna("").astype(str).str.split(";")
    return parts.map(lambda found: any(c in found for c in codes)).astype(bool)


def bh_adjust(p_values) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (false-discovery rate) of one family of tests; NaN entries
    stay NaN and do not count as tests."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    m = int(finite.sum())
    if m == 0:
        return adjusted
    order = np.argsort(p[finite])
    ranked = p[finite][order] * m / np.arange(1, m + 1)
    monotone = np.minimum.accumulate(ranked[::-1])[::-1]
    values = np.empty(m)
    values[order] = np.clip(monotone, 0, 1)
    adjusted[finite] = values
    return adjusted


def count(value) -> int:
    """A count for a sentence: always an integer ("n = 24 models", never 24.0)."""
    return int(round(float(value)))
