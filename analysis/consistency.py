"""Cross-model consistency: how similar base models' synergy matrices are, how much of the gain
variance is due to the dataset, the model or their interaction, and a PCA of the gains."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from analysis.common import MissingInputError, correlation


def _cell_vectors(synergy: pd.DataFrame, method: str) -> pd.DataFrame:
    """Columns: base models; rows: (dataset, task) cells."""
    rows = synergy[synergy["method"] == method]
    return rows.pivot_table(
        index=["dataset", "task"], columns="base_model_name", values="gain", aggfunc="mean", observed=True
    )


def model_correlations(synergy: pd.DataFrame, min_cells: int = 3) -> pd.DataFrame:
    """Pearson and Spearman correlation between every pair of base models' synergy matrices (per
    method), over the cells both have."""
    records = []
    for method in sorted(synergy["method"].dropna().unique()):
        cells = _cell_vectors(synergy, method)
        for a, b in itertools.combinations(sorted(cells.columns), 2):
            pearson, _, n = correlation(cells[a], cells[b], "pearson", min_cells)
            spearman, _, _ = correlation(cells[a], cells[b], "spearman", min_cells)
            records.append(
                {
                    "method": method,
                    "model_a": a,
                    "model_b": b,
                    "pearson": pearson,
                    "spearman": spearman,
                    "n_cells": n,
                }
            )
    return pd.DataFrame(records, columns=["method", "model_a", "model_b", "pearson", "spearman", "n_cells"])


def correlation_matrix(pairs: pd.DataFrame, method: str, kind: str = "pearson") -> pd.DataFrame:
    """Square symmetric matrix (diagonal 1) from the pair table."""
    rows = pairs[pairs["method"] == method]
    models = sorted(set(rows["model_a"]) | set(rows["model_b"]))
    matrix = pd.DataFrame(np.eye(len(models)), index=models, columns=models)
    for a, b, value in zip(rows["model_a"], rows["model_b"], rows[kind], strict=False):
        matrix.loc[a, b] = matrix.loc[b, a] = value
    return matrix


def complete_block(matrix: pd.DataFrame) -> pd.DataFrame:
    """Drop the row or column with the largest share of missing cells until none is missing, so a
    model with a few failed runs costs those datasets only if that loses less data."""
    while matrix.size and matrix.isna().to_numpy().any():
        row_missing = matrix.isna().mean(axis=1)
        col_missing = matrix.isna().mean(axis=0)
        if row_missing.max() >= col_missing.max():
            matrix = matrix.drop(index=row_missing.idxmax())
        else:
            matrix = matrix.drop(columns=col_missing.idxmax())
    return matrix


def two_way_shares(matrix: pd.DataFrame) -> tuple[float, float, float]:
    """Shares of the total sum of squares of a complete rows x columns table explained by the row
    factor, the column factor and their interaction (two-way ANOVA without replication: the
    interaction is the residual, so with one run per condition it also holds the run-to-run noise).
    NaN when there is no variance."""
    values = matrix.to_numpy(dtype=float)
    grand = values.mean()
    total = float(((values - grand) ** 2).sum())
    if total == 0:
        return np.nan, np.nan, np.nan
    rows = float(values.shape[1] * ((values.mean(axis=1) - grand) ** 2).sum())
    cols = float(values.shape[0] * ((values.mean(axis=0) - grand) ** 2).sum())
    return rows / total, cols / total, (total - rows - cols) / total


def variance_decomposition(synergy: pd.DataFrame, min_models: int = 2, min_datasets: int = 2) -> pd.DataFrame:
    """Per (method, task): share of gain variance explained by dataset, by base model, by interaction."""
    records = []
    for (method, task), rows in synergy.groupby(["method", "task"], observed=True):
        block = complete_block(
            rows.pivot_table(
                index="dataset", columns="base_model_name", values="gain", aggfunc="mean", observed=True
            )
        )
        n_datasets, n_models = block.shape
        if n_models < min_models or n_datasets < min_datasets:
            continue
        share_dataset, share_model, share_interaction = two_way_shares(block)
        records.append(
            {
                "method": method,
                "task": task,
                "n_models": n_models,
                "n_datasets": n_datasets,
                "share_dataset": share_dataset,
                "share_model": share_model,
                "share_interaction": share_interaction,
            }
        )
    return pd.DataFrame(
        records,
        columns=[
            "method",
            "task",
            "n_models",
            "n_datasets",
            "share_dataset",
            "share_model",
            "share_interaction",
        ],
    )


def gain_pca(synergy: pd.DataFrame, max_components: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """PCA of the fine-tuned models (rows) by their task gains (columns, standardized per task because
    the scales differ: MT-Bench 1-10, accuracies in percent). Returns (explained, scores)."""
    wide = synergy.pivot_table(
        index=["base_model_name", "method", "dataset"],
        columns="task",
        values="gain",
        aggfunc="mean",
        observed=True,
    )
    wide = complete_block(wide.loc[:, wide.notna().mean() >= 0.5])
    wide = wide.loc[:, wide.std(ddof=0) > 0]
    if wide.shape[0] < 3 or wide.shape[1] < 2:
        raise MissingInputError(
            f"PCA needs at least 3 models with 2 varying tasks in common, "
            f"got {wide.shape[0]} x {wide.shape[1]}"
        )
    z = ((wide - wide.mean()) / wide.std(ddof=0)).to_numpy()
    _, singular, vt = np.linalg.svd(z, full_matrices=False)
    variance = singular**2
    ratio = variance / variance.sum()
    k = min(max_components, len(ratio))
    explained = pd.DataFrame(
        {
            "component": np.arange(1, k + 1),
            "explained_variance_ratio": ratio[:k],
            "cumulative": np.cumsum(ratio)[:k],
        }
    )
    projected = z @ vt[:2].T
    scores = wide.index.to_frame(index=False)
    scores["pc1"] = projected[:, 0]
    scores["pc2"] = projected[:, 1] if projected.shape[1] > 1 else 0.0
    return explained, scores


def _explained(z: np.ndarray) -> np.ndarray:
    singular = np.linalg.svd(z - z.mean(axis=0), compute_uv=False)
    return singular**2 / (singular**2).sum()


def dataset_pca(synergy: pd.DataFrame, method: str, permutations: int = 20, seed: int = 0) -> pd.DataFrame:
    """The study's PCA design: datasets (rows) by (base model x task) cells (columns) of one method,
    each column standardised (tasks have different scales), on the largest complete block. Returns
    per component the explained variance ratio and the cumulative share, with the matrix shape, and
    ``null_cumulative``: the mean cumulative share when each column's values are shuffled across
    datasets (no shared structure): with 10 datasets there are at most 9 components, so even noise
    reaches 100% at 9 and a claim like "5 components explain 90%" needs this comparison."""
    rows = synergy[synergy["method"] == method]
    wide = rows.pivot_table(
        index="dataset", columns=["base_model_name", "task"], values="gain", aggfunc="mean", observed=True
    )
    wide = complete_block(wide.loc[:, wide.notna().mean() >= 0.5])
    wide = wide.loc[:, wide.std(ddof=0) > 0]
    if wide.shape[0] < 3 or wide.shape[1] < 2:
        raise MissingInputError(
            f"the dataset PCA of {method} needs at least 3 datasets with varying gains, got {wide.shape[0]}"
        )
    z = ((wide - wide.mean()) / wide.std(ddof=0)).to_numpy()
    ratio = _explained(z)
    n = min(len(ratio), wide.shape[0] - 1)  # centred rows: at most n_datasets - 1 components
    rng = np.random.default_rng(seed)
    null = np.mean([np.cumsum(_explained(rng.permuted(z, axis=0)))[:n] for _ in range(permutations)], axis=0)
    return pd.DataFrame(
        {
            "method": method,
            "component": np.arange(1, n + 1),
            "explained_variance_ratio": ratio[:n],
            "cumulative": np.cumsum(ratio)[:n],
            "null_cumulative": null,
            "n_datasets": wide.shape[0],
            "n_columns": wide.shape[1],
        }
    )
