"""Gain over the base model: a fine-tuned model's score minus its base model's score on the same
benchmark, shots and metric. The one implementation, long (one row per score, the published
``gains`` table) and wide (the leaderboard's shape); analysis, release and the Space use it.

Base rows are the rows with ``method == "base"`` or ``dataset == "pretrain"``; a fine-tuned row is
matched to the first base row of its ``base_model_name`` (``base_model`` when the name is empty) with
the same benchmark, shots and metric."""

from __future__ import annotations

import pandas as pd

from common.catalog import PRETRAIN
from common.schema import IDENTITY_COLUMNS, parse_wide_column, wide_column

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
MATCH = ["base_model_name", "benchmark", "shots", "metric"]


class NoBaseRowsError(ValueError):
    """A scores table without base-model rows: no gain can be computed."""


def has_flags(flags: pd.Series) -> pd.Series:
    """Rows that carry at least one data-quality flag."""
    return flags.fillna("").astype(str).str.len().gt(0)


def task_labels(frame: pd.DataFrame) -> pd.Series:
    """The leaderboard column name of each score row (``gsm8k-4shot``, ``mtbench-total``)."""
    labels = [
        wide_column(b, s, m)
        for b, s, m in zip(frame["benchmark"], frame["shots"], frame["metric"], strict=True)
    ]
    return pd.Series(labels, index=frame.index, dtype="string")


def is_base(frame: pd.DataFrame) -> pd.Series:
    return ((frame["dataset"] == PRETRAIN) | (frame["method"] == "base")).fillna(False).astype(bool)


def _with_base_name(scores: pd.DataFrame) -> pd.DataFrame:
    """Own runs may leave ``base_model_name`` empty; the base model id identifies the base then."""
    return scores.assign(base_model_name=scores["base_model_name"].fillna(scores["base_model"]))


def split_base(scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(base model rows, fine-tuned rows)."""
    base = is_base(scores)
    return scores[base], scores[~base]


def missing_base_models(scores: pd.DataFrame) -> list[str]:
    """Base models that have fine-tuned rows but no base-model rows to compare with."""
    base, tuned = split_base(_with_base_name(scores))
    return sorted(set(tuned["base_model_name"].dropna()) - set(base["base_model_name"].dropna()))


def compute_gains(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per fine-tuned score that has a matching base score; columns ``GAIN_COLUMNS``. ``flagged``:
    the score or its base score carries a data-quality flag (``flags`` and ``base_flags`` say which). Raises ``NoBaseRowsError`` when the table
    has no base-model rows at all."""
    scores = _with_base_name(scores)
    if "flags" not in scores.columns:
        scores = scores.assign(flags="")
    base, tuned = split_base(scores)
    if base.empty:
        raise NoBaseRowsError(
            "the scores table has no base-model rows (dataset == 'pretrain', method == 'base', epoch 0): "
            "gains cannot be computed. Evaluate the base models too (`python -m evaluation run` on the "
            "base model) or import a table that includes them."
        )
    base = base.drop_duplicates(MATCH).rename(columns={"value": "base_value", "flags": "base_flags"})
    merged = tuned.merge(base[[*MATCH, "base_value", "base_flags"]], on=MATCH, how="inner")
    merged["gain"] = merged["value"] - merged["base_value"]
    # ``flags``: the fine-tuned row's own; ``base_flags``: its base row's. They cancel in a paired
    # difference of two fine-tuned models, so the analysis' comparisons look at ``flags`` only.
    merged["flags"] = merged["flags"].fillna("").astype(str)
    merged["base_flags"] = merged["base_flags"].fillna("").astype(str)
    merged["flagged"] = has_flags(merged["flags"]) | has_flags(merged["base_flags"])
    merged["task"] = task_labels(merged)
    merged = merged.dropna(subset=["gain"])
    ordered = merged[list(GAIN_COLUMNS)].sort_values(["base_model_name", "model_id", "task"])
    return ordered.reset_index(drop=True)


def wide_gains(gains: pd.DataFrame, leaderboard: pd.DataFrame, score_names: list[str]) -> pd.DataFrame:
    """The long gains in the leaderboard's shape: same rows, one column per score; a base model's own
    row gains 0 where it has a score, a row without a matching base score is null."""
    table = gains.pivot_table(index="model_id", columns="task", values="gain", aggfunc="first")
    table = table.reindex(index=leaderboard["model_id"], columns=score_names).astype("float64")
    table.index = leaderboard.index
    base_rows = is_base(leaderboard).to_numpy()
    own = leaderboard.loc[base_rows, score_names].astype("float64")
    table.loc[base_rows] = own.where(own.isna(), 0.0)
    return table


def gains_of_leaderboard(leaderboard: pd.DataFrame, score_names: list[str]) -> pd.DataFrame:
    """Long gains of a wide leaderboard (its score columns decoded by ``common.schema``), for results
    published without their gains table."""
    identity = [c for c in IDENTITY_COLUMNS if c in leaderboard.columns]
    long = leaderboard[[*identity, *score_names]].melt(id_vars=identity, var_name="task", value_name="value")
    decoded = [parse_wide_column(name) for name in long["task"]]
    long["benchmark"] = [column.benchmark for column in decoded]
    long["shots"] = [column.shots for column in decoded]
    long["metric"] = [column.metric for column in decoded]
    return compute_gains(long.dropna(subset=["value"]))
