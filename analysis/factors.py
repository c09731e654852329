"""Training factors: LoRA vs full, data size, schedule (paired comparisons), epoch curves and
cross-lingual transfer."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from analysis.common import (
    COPY_FLAGS,
    bh_adjust,
    correlation,
    flag_mask,
    is_percent_task,
    is_single_dataset,
)
from common.catalog import ALL_MIXTURE, LEAVE_ONE_OUT_PREFIX, language_of
from common.gains import has_flags

# A pair is two fine-tuned models that differ only in the factor: same base model, dataset and the
# other training settings, compared on the same task.
_SETTINGS = ["base_model_name", "dataset", "method", "data_size", "epoch", "lr_schedule", "task"]
# factor column -> (level a, level b); the reported difference is gain(a) - gain(b).
PAPER_FACTORS: dict[str, tuple[object, object]] = {
    "method": ("full", "lora"),
    "data_size": (20000, 1000),
    "lr_schedule": ("constant", "cosine"),
}
DIFF_DECIMALS = 9  # scores carry at most 6 decimals
COMPARISON_COLUMNS = [
    "factor",
    "level_a",
    "level_b",
    "stratum",
    "task",
    "n_pairs",
    "n_dropped_copied",
    "mean_diff",
    "median_diff",
    "share_a_wins",
    "share_b_wins",
    "share_ties",
    "wilcoxon_stat",
    "p_value",
    "p_adjusted",
    "n_flagged",
]


def copied_models(gains: pd.DataFrame) -> set[str]:
    """Fine-tuned models with any score the importer found copied from another model's row."""
    return set(gains.loc[flag_mask(gains["flags"], COPY_FLAGS), "model_id"].astype(str))


def _data_kind(dataset: str) -> str:
    if dataset == ALL_MIXTURE:
        return "all (mixture)"
    return "w/o-X" if str(dataset).startswith(LEAVE_ONE_OUT_PREFIX) else "single datasets"


def _epoch_regime(epochs: pd.Series) -> str:
    low, high = int(epochs.min()), int(epochs.max())
    return f"epoch {low}" if low == high else f"epochs {low}-{high}"


def strata(pairs: pd.DataFrame, factor: str) -> pd.Series:
    """The regime of each pair (data kind, data size, schedule, method, epoch regime), without the
    factor itself: the regimes have different, even opposite, effects, so they are never pooled."""
    parts = {
        "kind": pairs["dataset"].map(_data_kind),
        "data_size": pairs["data_size"].map(lambda v: f"{int(v)} samples"),
        "lr_schedule": pairs["lr_schedule"].astype(str),
        "method": pairs["method"].astype(str),
    }
    parts.pop(factor, None)
    key = pd.DataFrame(parts).astype(str).agg(", ".join, axis=1)
    regime = pairs.groupby(key)["epoch"].transform(lambda e: _epoch_regime(e))
    return key + ", " + regime


def paired_differences(gains: pd.DataFrame, factor: str, level_a, level_b) -> pd.DataFrame:
    """One row per matched pair: the settings, ``stratum``, ``diff`` = gain(a) - gain(b), ``flagged``
    (either fine-tuned row carries a flag of its own: the shared base row cancels in the difference)
    and ``copied`` (either row was copied from another model's, so the pair must not be used)."""
    keys = [c for c in _SETTINGS if c != factor]
    copies = copied_models(gains)
    gains = gains.assign(
        own_flagged=has_flags(gains["flags"]), copied=gains["model_id"].astype(str).isin(copies)
    )
    rows = (
        gains.groupby([*keys, factor], observed=True, dropna=False)
        .agg(gain=("gain", "mean"), flagged=("own_flagged", "any"), copied=("copied", "any"))
        .reset_index()
    )
    a = rows[rows[factor] == level_a].drop(columns=factor)
    b = rows[rows[factor] == level_b].drop(columns=factor)
    pairs = a.merge(b, on=keys, suffixes=("_a", "_b"))
    # rounded: (a - base) - (b - base) leaves float noise where a == b, and the Wilcoxon test must see
    # those ties as exact zeros
    pairs["diff"] = (pairs["gain_a"] - pairs["gain_b"]).round(DIFF_DECIMALS)
    pairs["flagged"] = pairs["flagged_a"] | pairs["flagged_b"]
    pairs["copied"] = pairs["copied_a"] | pairs["copied_b"]
    if factor not in pairs:
        pairs[factor] = level_a  # the stratum label then shows the first level's value
    pairs["stratum"] = strata(pairs, factor) if not pairs.empty else pd.Series(dtype=str)
    return pairs.drop(columns=factor)


def _wilcoxon(diffs: np.ndarray) -> tuple[float, float]:
    if len(diffs) < 2 or np.all(diffs == 0):
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.wilcoxon(diffs, zero_method="wilcox")
    return float(result.statistic), float(result.pvalue)


def summarize_pairs(pairs: pd.DataFrame, factor: str, level_a, level_b) -> pd.DataFrame:
    """Per (stratum, task): the paired statistics on the pairs that are not copies."""
    records = []
    for (stratum, task), rows in pairs.groupby(["stratum", "task"], observed=True):
        used = rows[~rows["copied"]]
        diffs = used["diff"].to_numpy(dtype=float)
        statistic, p_value = _wilcoxon(diffs)
        records.append(
            {
                "factor": factor,
                "level_a": str(level_a),
                "level_b": str(level_b),
                "stratum": stratum,
                "task": task,
                "n_pairs": len(diffs),
                "n_dropped_copied": int(rows["copied"].sum()),
                "mean_diff": float(diffs.mean()) if len(diffs) else math.nan,
                "median_diff": float(np.median(diffs)) if len(diffs) else math.nan,
                "share_a_wins": float((diffs > 0).mean()) if len(diffs) else math.nan,
                "share_b_wins": float((diffs < 0).mean()) if len(diffs) else math.nan,
                "share_ties": float((diffs == 0).mean()) if len(diffs) else math.nan,
                "wilcoxon_stat": statistic,
                "p_value": p_value,
                "p_adjusted": math.nan,
                "n_flagged": int(used["flagged"].sum()),
            }
        )
    return pd.DataFrame(records, columns=COMPARISON_COLUMNS)


def factor_comparisons(
    gains: pd.DataFrame, factors: dict[str, tuple[object, object]] | None = None
) -> pd.DataFrame:
    """Paired comparison per factor, stratum and task (Wilcoxon signed-rank test, win shares), on pairs
    that are not copies; ``p_adjusted``: Benjamini-Hochberg over every test of the table."""
    tables = [
        summarize_pairs(paired_differences(gains, f, a, b), f, a, b)
        for f, (a, b) in (factors or PAPER_FACTORS).items()
    ]
    tables = [t for t in tables if not t.empty]
    if not tables:
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    table = pd.concat(tables, ignore_index=True)
    table["p_adjusted"] = bh_adjust(table["p_value"])
    return table


def stratum_summary(comparisons: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Per (factor, stratum): pairs, copies dropped, benchmarks where each level is significantly
    better (BH-adjusted), and the mean difference over the tasks scored in percent (percentage points;
    MT-Bench, on 1-10, is reported on its own)."""
    records = []
    for (factor, stratum), rows in comparisons.groupby(["factor", "stratum"], sort=False):
        percent = rows[rows["task"].map(is_percent_task)]
        mtbench = rows[rows["task"] == "mtbench-total"]
        significant = rows["p_adjusted"] < alpha
        records.append(
            {
                "factor": factor,
                "level_a": rows["level_a"].iloc[0],
                "level_b": rows["level_b"].iloc[0],
                "stratum": stratum,
                "n_tasks": len(rows),
                "n_pairs": int(rows["n_pairs"].sum()),
                "n_dropped_copied": int(rows["n_dropped_copied"].sum()),
                "n_a_better": int((significant & (rows["mean_diff"] > 0)).sum()),
                "n_b_better": int((significant & (rows["mean_diff"] < 0)).sum()),
                "n_percent_tasks": len(percent),
                "mean_diff_percent_tasks": float(percent["mean_diff"].mean()) if len(percent) else math.nan,
                "mtbench_mean_diff": float(mtbench["mean_diff"].iloc[0]) if len(mtbench) else math.nan,
                "n_flagged": int(rows["n_flagged"].sum()),
            }
        )
    return pd.DataFrame(records)


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
    table = pd.DataFrame(
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
    table["p_adjusted"] = bh_adjust(table["p_value"]) if len(table) else pd.Series(dtype=float)
    return table


# --- leave one dataset out ------------------------------------------------------------------------


def leave_one_out(gains: pd.DataFrame) -> pd.DataFrame:
    """``w/o-X`` vs ``all`` per base model, method and task, at the leave-one-out runs' epoch:
    ``diff`` = gain(w/o-X) - gain(all); negative means dataset X helped the mixture on that task.
    Copied rows are dropped (``n_dropped_copied`` counts them per method)."""
    columns = [
        "base_model_name",
        "method",
        "removed",
        "task",
        "epoch",
        "loo_gain",
        "all_gain",
        "diff",
        "flagged",
    ]
    copies = copied_models(gains)
    kept = gains[~gains["model_id"].astype(str).isin(copies)]
    loo = kept[kept["dataset"].astype(str).str.startswith(LEAVE_ONE_OUT_PREFIX)]
    mixture = kept[kept["dataset"] == ALL_MIXTURE]
    keys = ["base_model_name", "method", "epoch", "lr_schedule", "task"]
    merged = loo.merge(mixture[[*keys, "gain", "flags"]], on=keys, suffixes=("", "_all"))
    if merged.empty:
        return pd.DataFrame(columns=[*columns, "n_dropped_copied"])
    merged["removed"] = merged["dataset"].astype(str).str.removeprefix(LEAVE_ONE_OUT_PREFIX)
    merged = merged.rename(columns={"gain": "loo_gain", "gain_all": "all_gain"})
    merged["diff"] = (merged["loo_gain"] - merged["all_gain"]).round(DIFF_DECIMALS)
    merged["flagged"] = has_flags(merged["flags"]) | has_flags(merged["flags_all"])
    dropped = gains[
        gains["model_id"].astype(str).isin(copies)
        & (
            gains["dataset"].astype(str).str.startswith(LEAVE_ONE_OUT_PREFIX)
            | (gains["dataset"] == ALL_MIXTURE)
        )
    ]
    n_dropped = dropped.groupby("method")["model_id"].nunique()
    table = merged[columns].assign(n_dropped_copied=merged["method"].map(n_dropped).fillna(0).astype(int))
    return table.sort_values(["method", "removed", "task"]).reset_index(drop=True)


def leave_one_out_summary(loo: pd.DataFrame) -> pd.DataFrame:
    """Per (method, removed dataset): mean difference over the tasks scored in percent (points) and
    the MT-Bench difference; the number of tasks where removing the dataset lowered the gain."""
    records = []
    for (method, removed), rows in loo.groupby(["method", "removed"]):
        percent = rows[rows["task"].map(is_percent_task)]
        mtbench = rows.loc[rows["task"] == "mtbench-total", "diff"]
        records.append(
            {
                "method": method,
                "removed": removed,
                "n_models": int(rows["base_model_name"].nunique()),
                "n_tasks": len(rows),
                "n_tasks_lower": int((rows["diff"] < 0).sum()),
                "mean_diff_percent_tasks": float(percent["diff"].mean()) if len(percent) else math.nan,
                "mtbench_diff": float(mtbench.mean()) if len(mtbench) else math.nan,
            }
        )
    return pd.DataFrame(records)


# --- data size at each size's best epoch ----------------------------------------------------------


def best_epoch_by_size(
    gains: pd.DataFrame, tasks: list[str], sizes: tuple[int, int] = (1000, 20000)
) -> pd.DataFrame:
    """Size study (single datasets, constant schedule, one checkpoint per epoch): per base model,
    dataset and task, the best gain over epochs at each size and ``diff`` = best(large) - best(small).
    Copied rows are left out."""
    small, large = sizes
    copies = copied_models(gains)
    rows = gains[
        is_single_dataset(gains["dataset"])
        & (gains["lr_schedule"] == "constant")
        & gains["task"].isin(tasks)
        & ~gains["model_id"].astype(str).isin(copies)
    ]
    rows = rows[rows["data_size"].isin(sizes)]
    if rows.empty:
        return pd.DataFrame()
    keys = ["base_model_name", "dataset", "task"]
    best = rows.loc[
        rows.groupby([*keys, "data_size"])["gain"].idxmax(), [*keys, "data_size", "epoch", "gain"]
    ]
    wide = best.pivot_table(index=keys, columns="data_size", values=["gain", "epoch"]).dropna()
    if wide.empty:
        return pd.DataFrame()
    table = pd.DataFrame(
        {
            f"best_gain_{small}": wide[("gain", small)],
            f"best_epoch_{small}": wide[("epoch", small)].astype(int),
            f"best_gain_{large}": wide[("gain", large)],
            f"best_epoch_{large}": wide[("epoch", large)].astype(int),
        }
    ).reset_index()
    table["diff"] = (table[f"best_gain_{large}"] - table[f"best_gain_{small}"]).round(DIFF_DECIMALS)
    return table


def best_epoch_size_test(table: pd.DataFrame) -> pd.DataFrame:
    """Per task: pairs, mean/median of best(20k) - best(1k), share 20k wins, Wilcoxon p, BH-adjusted."""
    records = []
    for task, rows in table.groupby("task"):
        diffs = rows["diff"].to_numpy(float)
        _, p_value = _wilcoxon(diffs)
        records.append(
            {
                "task": task,
                "n_pairs": len(diffs),
                "mean_diff": float(diffs.mean()),
                "median_diff": float(np.median(diffs)),
                "share_large_wins": float((diffs > 0).mean()),
                "p_value": p_value,
            }
        )
    result = pd.DataFrame(records)
    if not result.empty:
        result["p_adjusted"] = bh_adjust(result["p_value"])
    return result


# --- cross-lingual transfer per pre-training language ---------------------------------------------


def cross_lingual_by_language(
    gains: pd.DataFrame,
    tasks: tuple[str, ...] = ("mmlu-0shot", "jmmlu-0shot", "cmmlu-0shot"),
    min_models: int = 3,
) -> pd.DataFrame:
    """Per pre-training language group of the base models (English, Chinese, Japanese; ``all``): the
    mean gain on English MMLU and its Japanese and Chinese versions, and the correlation across
    fine-tuned models of every pair of them (MMLU-jp vs CMMLU included), BH-adjusted over the table."""
    present = [t for t in tasks if t in set(gains["task"].astype(str))]
    columns = [
        "language",
        "source_task",
        "target_task",
        "n_models",
        "mean_source_gain",
        "mean_target_gain",
        "pearson",
        "p_value",
        "p_adjusted",
    ]
    if len(present) < 2:
        return pd.DataFrame(columns=columns)
    wide = (
        gains[gains["task"].isin(present)]
        .pivot_table(
            index=["model_id", "base_model_name"],
            columns="task",
            values="gain",
            aggfunc="mean",
            observed=True,
        )
        .reset_index()
    )
    wide["language"] = wide["base_model_name"].map(language_of)
    records = []
    groups = [("all", wide), *wide.groupby("language")]
    for source, target in itertools.combinations(present, 2):
        for language, rows in groups:
            pearson, p_value, n = correlation(rows[source], rows[target], "pearson", min_models)
            both = rows[[source, target]].dropna()
            records.append(
                {
                    "language": language,
                    "source_task": source,
                    "target_task": target,
                    "n_models": n,
                    "mean_source_gain": float(both[source].mean()) if len(both) else math.nan,
                    "mean_target_gain": float(both[target].mean()) if len(both) else math.nan,
                    "pearson": pearson,
                    "p_value": p_value,
                }
            )
    table = pd.DataFrame(records)
    table["p_adjusted"] = bh_adjust(table["p_value"])
    return table[columns]
