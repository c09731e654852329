"""Per normalized-depth bin: how much the weights changed, and how the change correlates with the
model's gain across models (the paper: correlation peaks mid-depth while the raw change grows upward)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.common import MissingInputError, correlation

LAYER_COLUMNS = {"model_id", "layer", "depth", "frobenius", "relative"}


def per_layer_change(layers: pd.DataFrame) -> pd.DataFrame:
    """Per (model, layer): the modules combined. Frobenius norms add in squares; the relative change is
    the combined change over the combined base norm (base norm = frobenius / relative per module)."""
    if missing := LAYER_COLUMNS - set(layers.columns):
        raise MissingInputError(
            f"layers table lacks columns {sorted(missing)}; expected the output of "
            "`python -m analysis layers`"
        )
    rows = layers.dropna(subset=["depth"]).copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        base_norm = rows["frobenius"] / rows["relative"]
    rows["base_sq"] = np.where(rows["relative"] > 0, base_norm**2, np.nan)
    rows["change_sq"] = rows["frobenius"] ** 2
    grouped = rows.groupby(["model_id", "layer"]).agg(
        depth=("depth", "first"), change_sq=("change_sq", "sum"), base_sq=("base_sq", "sum")
    )
    grouped["frobenius"] = np.sqrt(grouped["change_sq"])
    grouped["relative"] = grouped["frobenius"] / np.sqrt(grouped["base_sq"].replace(0, np.nan))
    return grouped[["depth", "frobenius", "relative"]].reset_index()


def model_gain(gains: pd.DataFrame, tasks: list[str] | None = None) -> pd.Series:
    """One number per model: its mean gain over ``tasks`` (default: all of its tasks)."""
    rows = gains if tasks is None else gains[gains["task"].isin(tasks)]
    return rows.groupby("model_id")["gain"].mean()


def layer_gain_correlation(
    layers: pd.DataFrame, gain: pd.Series, bins: int = 10, min_models: int = 3
) -> pd.DataFrame:
    """Per depth bin: mean change across models, and the Pearson/Spearman correlation across models
    between the bin's relative change and the gain."""
    change = per_layer_change(layers)
    change["depth_bin"] = np.minimum((change["depth"].astype(float) * bins).astype(int), bins - 1)
    binned = change.groupby(["model_id", "depth_bin"])[["frobenius", "relative"]].mean().reset_index()
    binned = binned.merge(gain.rename("gain"), left_on="model_id", right_index=True, how="left")
    if binned["gain"].notna().sum() == 0:
        raise MissingInputError(
            "no model of the layers table has a gain in the scores table: the "
            "layers' model_id must match the scores' model_id"
        )
    records = []
    for index, rows in binned.groupby("depth_bin"):
        pearson, _, n = correlation(rows["relative"], rows["gain"], "pearson", min_models)
        spearman, _, _ = correlation(rows["relative"], rows["gain"], "spearman", min_models)
        records.append(
            {
                "depth_bin": (index + 0.5) / bins,
                "mean_frobenius": float(rows["frobenius"].mean()),
                "mean_relative": float(rows["relative"].mean()),
                "pearson": pearson,
                "spearman": spearman,
                "n_models": n,
            }
        )
    return pd.DataFrame(records)
