"""Training-task synergy: per base model and method, the dataset x task gain matrix in the main
condition, and how often each cell keeps its sign across base models."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.common import FORMAT_FLAG, MissingInputError, flag_mask, is_single_dataset
from analysis.config import DEFAULT_CONFIG, AnalysisConfig

SYNERGY_KEYS = ["base_model_name", "method", "dataset", "task"]


@dataclass(frozen=True)
class MainCondition:
    data_size: int
    schedule: str
    epoch: int
    note: str  # why it differs from the configured one; "" when it does not

    def describe(self) -> str:
        return f"{self.data_size} samples, epoch {self.epoch}, {self.schedule} schedule"


def resolve_main_condition(gains: pd.DataFrame, config: AnalysisConfig = DEFAULT_CONFIG) -> MainCondition:
    """The configured main condition, adapted to what the table holds (a demo grid trains fewer
    samples and epochs than the paper)."""
    single = gains[is_single_dataset(gains["dataset"])]
    if single.empty:
        raise MissingInputError(
            "no fine-tuned model trained on a single dataset: no synergy matrix "
            "(only base models, 'all' or leave-one-out runs are in the table)"
        )
    notes = []
    schedule = config.main_schedule
    if schedule not in set(single["lr_schedule"].dropna()):
        schedule = str(single["lr_schedule"].mode().iloc[0])
        notes.append(f"no {config.main_schedule} runs, using {schedule}")
    single = single[single["lr_schedule"] == schedule]
    size = config.main_data_size
    if size not in set(single["data_size"].dropna().astype(int)):
        size = int(single["data_size"].min())
        notes.append(f"no {config.main_data_size}-sample runs, using {size}")
    single = single[single["data_size"] == size]
    epoch = config.main_epoch if config.main_epoch is not None else int(single["epoch"].max())
    return MainCondition(size, schedule, epoch, "; ".join(notes))


def main_condition_gains(gains: pd.DataFrame, condition: MainCondition) -> pd.DataFrame:
    keep = (
        is_single_dataset(gains["dataset"])
        & (gains["data_size"] == condition.data_size)
        & (gains["lr_schedule"] == condition.schedule)
        & (gains["epoch"] == condition.epoch)
    )
    return gains[keep.fillna(False).astype(bool)]


def synergy_table(gains: pd.DataFrame, condition: MainCondition) -> pd.DataFrame:
    """One row per (base model, method, dataset, task): the main-condition gain."""
    main = main_condition_gains(gains, condition)
    table = (
        main.groupby(SYNERGY_KEYS, observed=True)
        .agg(gain=("gain", "mean"), flagged=("flagged", "any"))
        .reset_index()
    )
    return table.sort_values(SYNERGY_KEYS).reset_index(drop=True)


def synergy_matrix(synergy: pd.DataFrame, base_model_name: str, method: str) -> pd.DataFrame:
    """dataset x task matrix of one base model and method."""
    rows = synergy[(synergy["base_model_name"] == base_model_name) & (synergy["method"] == method)]
    return rows.pivot(index="dataset", columns="task", values="gain")


def _kind(n_models: int, share_positive: float, share_negative: float) -> str:
    if n_models < 2:
        return "single-model"
    if share_positive == 0.0 and share_negative == 0.0:
        return "no-change"  # every gain exactly zero (e.g. LongBench-v2 scores of 0 before and after)
    if share_positive == 1.0:
        return "universal-positive"
    if share_negative == 1.0:
        return "universal-negative"
    return "model-specific"


def synergy_agreement(synergy: pd.DataFrame) -> pd.DataFrame:
    """Per (method, dataset, task): how many base models agree on the sign of the gain.

    ``universal-*``: every model (at least two) has the same strict sign; ``no-change``: every gain is
    exactly zero; ``model-specific``: signs differ (or some models have exactly zero gain)."""
    rows = synergy.dropna(subset=["gain"])
    rows = rows.assign(positive=rows["gain"] > 0, negative=rows["gain"] < 0)
    grouped = rows.groupby(["method", "dataset", "task"], observed=True)
    table = grouped.agg(
        n_models=("gain", "size"),
        mean_gain=("gain", "mean"),
        share_positive=("positive", "mean"),
        share_negative=("negative", "mean"),
        n_flagged=("flagged", "sum"),
    ).reset_index()
    table["share_same_sign"] = np.maximum(table["share_positive"], table["share_negative"])
    table["kind"] = [
        _kind(n, p, q)
        for n, p, q in zip(table["n_models"], table["share_positive"], table["share_negative"], strict=False)
    ]
    table["n_flagged"] = table["n_flagged"].astype(int)
    return table[
        [
            "method",
            "dataset",
            "task",
            "n_models",
            "mean_gain",
            "share_positive",
            "share_negative",
            "share_same_sign",
            "kind",
            "n_flagged",
        ]
    ]


def format_learning_tasks(gains: pd.DataFrame) -> dict[str, list[str]]:
    """task -> base models whose base row fails the task's answer format (importer flag
    ``format_failure``): gains there are largely the model learning the format."""
    rows = gains[flag_mask(gains["base_flags"], FORMAT_FLAG)]
    return {
        str(task): sorted(map(str, names.unique()))
        for task, names in rows.groupby("task", observed=True)["base_model_name"]
    }


def dataset_effects(synergy: pd.DataFrame, tasks: list[str]) -> pd.DataFrame:
    """The dataset-effect table: per method, SFT dataset and task, the mean main-condition gain over
    base models (with how many models and how many of them gain)."""
    rows = synergy[synergy["task"].isin(tasks)].dropna(subset=["gain"])
    table = (
        rows.assign(positive=rows["gain"] > 0)
        .groupby(["method", "dataset", "task"], observed=True)
        .agg(mean_gain=("gain", "mean"), n_models=("gain", "size"), n_positive=("positive", "sum"))
        .reset_index()
    )
    table["n_positive"] = table["n_positive"].astype(int)
    return table
