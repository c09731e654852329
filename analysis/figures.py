"""Report figures. Each function takes analysis tables and returns a matplotlib Figure with a title
and labelled axes (gains are in score points: percentage points, or MT-Bench's 1-10 scale points)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.cluster.hierarchy import leaves_list, linkage  # noqa: E402

from common.io import atomic_path

GAIN_LABEL = "gain over base model (score points)"


def save(figure: plt.Figure, path: Path, dpi: int = 110) -> Path:

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        figure.savefig(handle, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return path


def _heatmap(
    ax: plt.Axes,
    matrix: pd.DataFrame,
    label: str,
    annotate: pd.DataFrame | None = None,
    center: bool = True,
    vlim: float | None = None,
) -> None:
    values = matrix.to_numpy(dtype=float)
    limit = vlim or (np.nanmax(np.abs(values)) if np.isfinite(values).any() else 1.0) or 1.0
    image = ax.imshow(
        values,
        cmap="RdBu_r" if center else "viridis",
        aspect="auto",
        vmin=-limit if center else None,
        vmax=limit if center else None,
    )
    ax.set_xticks(
        range(matrix.shape[1]), [str(c) for c in matrix.columns], rotation=60, ha="right", fontsize=7
    )
    ax.set_yticks(range(matrix.shape[0]), [str(i) for i in matrix.index], fontsize=7)
    if annotate is not None and matrix.size <= 400:
        for (i, j), text in np.ndenumerate(annotate.to_numpy()):
            ax.text(j, i, text, ha="center", va="center", fontsize=6)
    ax.figure.colorbar(image, ax=ax, label=label, shrink=0.8)


def gain_distribution(gains: pd.DataFrame, tasks: list[str]) -> plt.Figure:
    rows = gains[gains["task"].isin(tasks)]
    data = [rows.loc[rows["task"] == t, "gain"].to_numpy() for t in tasks]
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(tasks)), 4.5))
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(tasks) + 1), tasks, rotation=60, ha="right")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("benchmark (shot setting)")
    ax.set_ylabel(GAIN_LABEL)
    ax.set_title(f"Gains of all {gains['model_id'].nunique()} fine-tuned models per benchmark")
    return fig


def synergy_grid(synergy: pd.DataFrame, method: str) -> plt.Figure:
    """One heatmap per base model (same rows, columns and colour scale), labels on the outer axes only:
    one figure per method keeps the report readable and fast to draw."""
    rows = synergy[synergy["method"] == method]
    models = sorted(rows["base_model_name"].unique())
    datasets, tasks = sorted(rows["dataset"].unique()), sorted(rows["task"].unique())
    cols = min(3, len(models))
    n_rows = int(np.ceil(len(models) / cols))
    fig, axes = plt.subplots(
        n_rows,
        cols,
        figsize=(0.22 * len(tasks) * cols + 3, 0.3 * len(datasets) * n_rows + 2),
        squeeze=False,
        sharex=True,
        sharey=True,
    )
    limit = float(np.nanpercentile(np.abs(rows["gain"]), 98)) or 1.0
    for ax, model in zip(axes.flat, models, strict=False):
        matrix = rows[rows["base_model_name"] == model].pivot(index="dataset", columns="task", values="gain")
        image = ax.imshow(
            matrix.reindex(index=datasets, columns=tasks).to_numpy(float),
            cmap="RdBu_r",
            aspect="auto",
            vmin=-limit,
            vmax=limit,
        )
        ax.set_title(model, fontsize=9)
    for ax in list(axes.flat)[len(models) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xticks(range(len(tasks)), tasks, rotation=90, fontsize=6)
        ax.set_xlabel("benchmark (shot setting)")
    for ax in axes[:, 0]:
        ax.set_yticks(range(len(datasets)), datasets, fontsize=7)
        ax.set_ylabel("SFT dataset")
    fig.colorbar(image, ax=axes, label=GAIN_LABEL, shrink=0.6)
    fig.suptitle(f"{method}: synergy matrix (gain per SFT dataset and benchmark) of each base model")
    return fig


def agreement_heatmap(agreement: pd.DataFrame, method: str) -> plt.Figure:
    rows = agreement[agreement["method"] == method]
    mean = rows.pivot(index="dataset", columns="task", values="mean_gain")
    share = rows.pivot(index="dataset", columns="task", values="share_same_sign")
    fig, ax = plt.subplots(figsize=(max(7, 0.45 * mean.shape[1] + 3), 0.45 * mean.shape[0] + 2.5))
    _heatmap(ax, mean, "mean " + GAIN_LABEL, annotate=share.map(lambda v: f"{v:.0%}" if pd.notna(v) else ""))
    ax.set_xlabel("benchmark (shot setting)")
    ax.set_ylabel("SFT dataset")
    ax.set_title(f"{method}: mean gain across base models; text = share of models with the majority sign")
    return fig


def clustered_correlation(matrix: pd.DataFrame, title: str) -> plt.Figure:
    order = list(range(len(matrix)))
    filled = matrix.fillna(0).to_numpy()
    if len(matrix) > 2:
        order = list(leaves_list(linkage(filled, method="average", metric="euclidean")))
    ordered = matrix.iloc[order, order]
    fig, ax = plt.subplots(figsize=(0.5 * len(matrix) + 4, 0.5 * len(matrix) + 3))
    _heatmap(
        ax, ordered, "correlation of synergy matrices", annotate=ordered.map(lambda v: f"{v:.2f}"), vlim=1.0
    )
    ax.set_xlabel("base model (hierarchically clustered order)")
    ax.set_ylabel("base model")
    ax.set_title(title)
    return fig


def variance_bars(decomposition: pd.DataFrame, method: str) -> plt.Figure:
    rows = decomposition[decomposition["method"] == method].set_index("task")
    parts = ["share_dataset", "share_model", "share_interaction"]
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(rows) + 2), 4.5))
    bottom = np.zeros(len(rows))
    for part in parts:
        ax.bar(range(len(rows)), rows[part], bottom=bottom, label=part.replace("share_", ""))
        bottom += rows[part].to_numpy()
    ax.set_xticks(range(len(rows)), rows.index, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("share of gain variance (0-1)")
    ax.set_xlabel("benchmark (shot setting)")
    ax.set_title(f"{method}: gain variance explained by dataset, base model and their interaction")
    ax.legend()
    return fig


def pca_plot(explained: pd.DataFrame, scores: pd.DataFrame) -> plt.Figure:
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    left.bar(explained["component"], explained["explained_variance_ratio"] * 100)
    left.plot(explained["component"], explained["cumulative"] * 100, "k.-", label="cumulative")
    left.set_xlabel("principal component")
    left.set_ylabel("explained variance (%)")
    left.set_title("PCA of standardized gains: explained variance")
    left.legend()
    for dataset, rows in scores.groupby("dataset"):
        right.scatter(rows["pc1"], rows["pc2"], label=dataset, s=18)
    right.set_xlabel(f"PC1 ({explained['explained_variance_ratio'].iloc[0]:.0%} of variance)")
    second = explained["explained_variance_ratio"].iloc[1] if len(explained) > 1 else 0
    right.set_ylabel(f"PC2 ({second:.0%} of variance)")
    right.set_title("Fine-tuned models on the first two components, by SFT dataset")
    right.legend(fontsize=6, ncol=2)
    return fig


def factor_plot(comparisons: pd.DataFrame, tasks: list[str]) -> plt.Figure:
    factors = list(dict.fromkeys(comparisons["factor"]))
    fig, axes = plt.subplots(
        len(factors), 1, figsize=(max(7, 0.5 * len(tasks) + 2), 3.2 * len(factors)), squeeze=False
    )
    for ax, factor in zip(axes[:, 0], factors, strict=False):
        rows = comparisons[(comparisons["factor"] == factor) & comparisons["task"].isin(tasks)]
        ax.bar(
            range(len(rows)), rows["mean_diff"], color=np.where(rows["mean_diff"] >= 0, "tab:blue", "tab:red")
        )
        for i, (share, n) in enumerate(zip(rows["share_a_wins"], rows["n_pairs"], strict=False)):
            ax.text(i, 0, f"{share:.0%}\nn={n}", ha="center", va="bottom", fontsize=6)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(range(len(rows)), rows["task"], rotation=45, ha="right", fontsize=7)
        level_a, level_b = rows["level_a"].iloc[0], rows["level_b"].iloc[0]
        ax.set_ylabel(f"mean gain difference\n{level_a} - {level_b} (points)")
        ax.set_title(f"{factor}: {level_a} vs {level_b} (text: share of pairs {level_a} wins)")
    axes[-1, 0].set_xlabel("benchmark (shot setting)")
    fig.tight_layout()
    return fig


def epoch_plot(curves: pd.DataFrame, tasks: list[str]) -> plt.Figure:
    tasks = [t for t in tasks if t in set(curves["task"])][:8]
    cols = min(4, len(tasks))
    rows_n = int(np.ceil(len(tasks) / cols))
    fig, axes = plt.subplots(rows_n, cols, figsize=(4 * cols, 3.2 * rows_n), squeeze=False)
    for ax, task in zip(axes.flat, tasks, strict=False):
        for (study, method, size), rows in curves[curves["task"] == task].groupby(
            ["study", "method", "data_size"]
        ):
            rows = rows.sort_values("epoch")
            line = ax.plot(rows["epoch"], rows["mean_gain"], marker=".", label=f"{study} {method} {size}")[0]
            ax.fill_between(
                rows["epoch"].astype(float),
                rows["q25_gain"],
                rows["q75_gain"],
                alpha=0.15,
                color=line.get_color(),
            )
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean gain (points)")
    for ax in list(axes.flat)[len(tasks) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.suptitle("Mean gain per epoch across models (band: 25-75% of models)")
    fig.tight_layout()
    return fig


def cross_lingual_plot(gains: pd.DataFrame, pairs: pd.DataFrame) -> plt.Figure:
    pooled = pairs[pairs["base_model_name"] == "all"]
    wide = gains.pivot_table(
        index=["model_id", "base_model_name"], columns="task", values="gain"
    ).reset_index()
    fig, axes = plt.subplots(1, len(pooled), figsize=(5.5 * len(pooled), 4.5), squeeze=False)
    for ax, (_, pair) in zip(axes[0], pooled.iterrows(), strict=False):
        for name, rows in wide.groupby("base_model_name"):
            ax.scatter(rows[pair["source_task"]], rows[pair["target_task"]], s=8, label=name)
        ax.set_xlabel(f"gain on {pair['source_task']} (points)")
        ax.set_ylabel(f"gain on {pair['target_task']} (points)")
        ax.set_title(f"r = {pair['pearson']:.2f} (n = {pair['n_models']})")
    axes[0, 0].legend(fontsize=6)
    fig.suptitle("Cross-lingual transfer: English MMLU gains vs Chinese/Japanese MMLU gains")
    return fig


def predictor_plot(summary: pd.DataFrame, values: pd.DataFrame, task: str) -> plt.Figure:
    pooled = summary[summary["task"] == "all"]
    predictors = [p for p in pooled["predictor"].unique()]
    fig, axes = plt.subplots(1, len(predictors) + 1, figsize=(4.2 * (len(predictors) + 1), 4), squeeze=False)
    bar = axes[0, 0]
    labels = [f"{m}\n{p}" for m, p in zip(pooled["method"], pooled["predictor"], strict=False)]
    bar.bar(range(len(pooled)), pooled["mean_spearman"])
    bar.set_xticks(range(len(pooled)), labels, rotation=60, ha="right", fontsize=7)
    bar.axhline(0, color="grey", lw=0.8)
    bar.set_ylabel("mean within-model Spearman with gain")
    bar.set_title("Predictors of gains (all benchmarks)")
    rows = values[values["task"] == task]
    for ax, predictor in zip(axes[0, 1:], predictors, strict=False):
        for name, group in rows.groupby("base_model_name"):
            ax.scatter(group[predictor], group["gain"], s=12, label=name)
        ax.set_xlabel(predictor.replace("_", " "))
        ax.set_ylabel(f"gain on {task} (points)")
        ax.set_title(f"{predictor} vs gain")
    axes[0, -1].legend(fontsize=6)
    fig.tight_layout()
    return fig


def layer_plot(table: pd.DataFrame) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(
        table["depth_bin"], table["mean_relative"], "o-", color="tab:orange", label="mean relative change"
    )
    ax.set_xlabel("normalized layer depth (0 = bottom, 1 = top)")
    ax.set_ylabel("relative weight change ||W-W0|| / ||W0||", color="tab:orange")
    twin = ax.twinx()
    twin.plot(table["depth_bin"], table["pearson"], "s-", color="tab:blue", label="correlation with gain")
    twin.set_ylabel("Pearson r (change vs gain, across models)", color="tab:blue")
    twin.axhline(0, color="grey", lw=0.8)
    ax.set_title("Layer-wise weight change and its correlation with gain")
    return fig


def lodo_plot(errors: pd.DataFrame) -> plt.Figure:
    rows = errors[errors["task"] != "all"]
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(rows) + 2), 4))
    x = np.arange(len(rows))
    ax.bar(x - 0.2, rows["model_mae"], width=0.4, label="perplexity model")
    ax.bar(x + 0.2, rows["baseline_mae"], width=0.4, label="mean-gain baseline")
    ax.set_xticks(x, rows["task"], rotation=60, ha="right", fontsize=7)
    ax.set_xlabel("benchmark (shot setting)")
    ax.set_ylabel("mean absolute error of predicted gain (points)")
    ax.set_title("Predicting gains before training: leave-one-dataset-out error")
    ax.legend()
    return fig


def model_map_plot(frame: pd.DataFrame) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7, 5.5))
    markers = {"base": "*", "full": "o", "lora": "^"}
    colours = dict(zip(sorted(frame["base_model"].unique()), plt.cm.tab10.colors, strict=False))
    for (base, method), rows in frame.groupby(["base_model", "method"]):
        is_base = method == "base"  # hollow stars, drawn below: checkpoints near their base stay visible
        ax.scatter(
            rows["x"],
            rows["y"],
            marker=markers.get(method, "s"),
            s=320 if is_base else 45,
            facecolor="none" if is_base else colours[base],
            edgecolor=colours[base],
            linewidth=2 if is_base else 0,
            zorder=1 if is_base else 2,
            label=f"{base} ({method})",
            alpha=0.9,
        )
    first = frame.iloc[0]
    ax.set_xlabel(f"map axis 1: PC1 of centred log-likelihoods ({first['x_variance']:.0%} of variance, nats)")
    ax.set_ylabel(f"map axis 2: PC2 ({first['y_variance']:.0%} of variance, nats)")
    ax.set_title("Model map: models placed by their log-likelihoods of a fixed text set")
    ax.legend(fontsize=7, loc="best")
    return fig
