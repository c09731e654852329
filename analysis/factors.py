"""Training factors: LoRA vs full, data size, schedule (paired comparisons), epoch curves and
cross-lingual transfer."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from analysis.common import correlation, is_single_dataset
from common.catalog import ALL_MIXTURE

# A pair is two fine-tuned models that differ only in the factor: same base model, dataset and the
# other training settings, compared on the same task.
_SETTINGS = ["base_model_name", "dataset", "method", "data_size", "epoch", "lr_schedule", "task"]
# factor column -> (level a, level b); the reported difference is gain(a) - gain(b).
PAPER_FACTORS: dict[str, tuple[object, object]] = {
    "method": ("full", "lora"),
    "data_size": (20000, 1000),
    "lr_schedule": ("constant", "cosine"),
}
COMPARISON_COLUMNS = [
    "factor",
    "level_a",
    "level_b",
    "task",
    "n_pairs",
    "mean_diff",
    "median_diff",
    "share_a_wins",
    "share_b_wins",
    "share_ties",
    "wilcoxon_stat",
    "p_value",
    "n_flagged",
]


def paired_differences(gains: pd.DataFrame, factor: str, level_a, level_b) -> pd.DataFrame:
    """One row per matched pair: the settings, ``diff`` = gain(a) - gain(b), ``flagged``."""
    keys = [c for c in _SETTINGS if c != factor]
    rows = (
        gains.groupby([*keys, factor], observed=True, dropna=False)
        .agg(gain=("gain", "mean"), flagged=("flagged", "any"))
        .reset_index()
    )
    a = rows[rows[factor] == level_a].drop(columns=factor)
    b = rows[rows[factor] == level_b].drop(columns=factor)
    pairs = a.merge(b, on=keys, suffixes=("_a", "_b"))
    pairs["diff"] = pairs["gain_a"] - pairs["gain_b"]
    pairs["flagged"] = pairs["flagged_a"] | pairs["flagged_b"]
    return pairs


def _wilcoxon(diffs: np.ndarray) -> tuple[float, float]:
    if len(diffs) < 2 or np.all(diffs == 0):
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.wilcoxon(diffs, zero_method="wilcox")
    return float(result.statistic), float(result.pvalue)


def summarize_pairs(pairs: pd.DataFrame, factor: str, level_a, level_b) -> pd.DataFrame:
    records = []
    for task, rows in pairs.groupby("task", observed=True):
        diffs = rows["diff"].to_numpy(dtype=float)
        statistic, p_value = _wilcoxon(diffs)
        records.append(
            {
                "factor": factor,
                "level_a": str(level_a),
                "level_b": str(level_b),
                "task": task,
                "n_pairs": len(diffs),
                "mean_diff": float(diffs.mean()),
                "median_diff": float(np.median(diffs)),
                "share_a_wins": float((diffs > 0).mean()),
                "share_b_wins": float((diffs < 0).mean()),
                "share_ties": float((diffs == 0).mean()),
                "wilcoxon_stat": statistic,
                "p_value": p_value,
                "n_flagged": int(rows["flagged"].sum()),
            }
        )
    return pd.DataFrame(records, columns=COMPARISON_COLUMNS)


def factor_comparisons(
    gains: pd.DataFrame, factors: dict[str, tuple[object, object]] | None = None
) -> pd.DataFrame:
    """Paired comparison per factor and task, with a Wilcoxon signed-rank test and win shares."""
    tables = [
        summarize_pairs(paired_differences(gains, f, a, b), f, a, b)
        for f, (a, b) in (factors or PAPER_FACTORS).items()
    ]
    tables = [t for t in tables if not t.empty]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=COMPARISON_COLUMNS)


def _curve(rows: pd.DataFrame, study: str) -> pd.DataFrame:
    per_model = (
        rows.groupby(["method", "data_size", "task", "epoch", "base_model_name", "dataset"], observed=True)[
            "gain"
        ]
        .mean()
        .reset_index()
    )
    grouped = per_model.groupby(["method", "data_size", "task", "epoch"], observed=True)["gain"]
    # built-in aggregations only: per-group Python lambdas take seconds on the real table
    table = pd.DataFrame(
        {
            "n_models": grouped.size(),
            "mean_gain": grouped.mean(),
            "std_gain": grouped.std(ddof=0),
            "q25_gain": grouped.quantile(0.25),
            "q75_gain": grouped.quantile(0.75),
        }
    ).reset_index()
    table.insert(0, "study", study)
    return table


def epoch_curves(gains: pd.DataFrame) -> pd.DataFrame:
    """Mean gain per epoch with its spread across models. ``all-cosine``: the mixture runs, where each
    epoch count is its own cosine run; ``size-constant``: single-dataset constant-schedule checkpoints;
    ``kept-checkpoints``: other runs of ours that kept several epochs."""
    mixture = gains[(gains["dataset"] == ALL_MIXTURE) & (gains["lr_schedule"] == "cosine")]
    size = gains[is_single_dataset(gains["dataset"]) & (gains["lr_schedule"] == "constant")]
    # Our own runs (a run_id) that kept several epochs of one schedule, e.g. the demo grid's cosine runs.
    rest = gains.drop(mixture.index.union(size.index))
    rest = rest[rest["run_id"].notna()]
    checkpoints = rest[rest.groupby("run_id")["epoch"].transform("nunique") > 1]
    studies = (("all-cosine", mixture), ("size-constant", size), ("kept-checkpoints", checkpoints))
    parts = [_curve(rows, study) for study, rows in studies if rows["epoch"].nunique() > 1]
    if not parts:
        return pd.DataFrame(
            columns=[
                "study",
                "method",
                "data_size",
                "task",
                "epoch",
                "n_models",
                "mean_gain",
                "std_gain",
                "q25_gain",
                "q75_gain",
            ]
        )
    return pd.concat(parts, ignore_index=True)


def _cross_lingual_pairs(tasks: set[str], source: str, targets: tuple[str, ...]) -> list[tuple[str, str]]:
    """(source task, target task): each target shot setting with the source at the same shots if
    there is one, else the source's first shot setting."""
    sources = sorted(t for t in tasks if t.startswith(f"{source}-"))
    pairs = []
    for target in sorted(t for t in tasks if t.split("-")[0] in targets):
        shots = target.split("-", 1)[1]
        same = f"{source}-{shots}"
        if sources:
            pairs.append((same if same in sources else sources[0], target))
    return pairs


def cross_lingual(
    gains: pd.DataFrame,
    source: str = "mmlu",
    targets: tuple[str, ...] = ("cmmlu", "jmmlu"),
    min_models: int = 3,
) -> pd.DataFrame:
    """Correlation of gains on the English benchmark with its Chinese/Japanese versions across all
    fine-tuned models, pooled (``base_model_name == "all"``) and within each base model."""
    wide = gains.pivot_table(
        index=["model_id", "base_model_name"], columns="task", values="gain", aggfunc="mean", observed=True
    ).reset_index()
    records = []
    for source_task, target_task in _cross_lingual_pairs(set(gains["task"].astype(str)), source, targets):
        groups = [("all", wide), *wide.groupby("base_model_name", observed=True)]
        for name, rows in groups:
            pearson, p_value, n = correlation(rows[source_task], rows[target_task], "pearson", min_models)
            spearman, _, _ = correlation(rows[source_task], rows[target_task], "spearman", min_models)
            records.append(
                {
                    "base_model_name": name,
                    "source_task": source_task,
                    "target_task": target_task,
                    "n_models": n,
                    "pearson": pearson,
                    "spearman": spearman,
                    "p_value": p_value,
                }
            )
    return pd.DataFrame(
        records,
        columns=[
            "base_model_name",
            "source_task",
            "target_task",
            "n_models",
            "pearson",
            "spearman",
            "p_value",
        ],
    )
