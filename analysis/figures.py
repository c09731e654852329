"""Report figures. Each function takes analysis tables and returns a matplotlib Figure with a title
and labelled axes (gains are in score points: percentage points, or MT-Bench's 1-10 scale points)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import LinearSegmentedColormap  # noqa: E402
from scipy.cluster.hierarchy import leaves_list, linkage  # noqa: E402

from analysis.common import is_percent_task  # noqa: E402
from common.catalog import benchmark_family  # noqa: E402
from common.io import atomic_path  # noqa: E402
from common.palette import GAIN_CMAP_COLOURS, GAIN_CMAP_NAME, gain_colour  # noqa: E402

GAIN_LABEL = "gain over base model (score points)"
# Positive gains blue, negative red, in every figure and in the Space (common/palette.py).
GAIN_CMAP = LinearSegmentedColormap.from_list(GAIN_CMAP_NAME, GAIN_CMAP_COLOURS)


def model_colours(names) -> dict[str, tuple]:
    """A distinct colour for every model (tab20 holds 20; more models reuse them with another marker)."""
    palette = plt.cm.tab20.colors
    ordered = sorted({str(n) for n in names})
    return {name: palette[(2 * i) % 20 if i < 10 else (2 * i + 1) % 20] for i, name in enumerate(ordered)}


def _family(task: str) -> str:
    """The colour-scale group of a task: its benchmark family, MT-Bench (1-10 scale) on its own."""
    family = benchmark_family(str(task).rsplit("-", 1)[0])
    return family if is_percent_task(task) else f"{family} 1-10"


def family_scaled(matrix: pd.DataFrame, percentile: float = 98) -> tuple[pd.DataFrame, dict[str, float]]:
    """Gains divided by one limit per benchmark family (its ``percentile`` of |gain|), so that a family
    with small gains (MT-Bench, AlpacaEval) is not washed out by one with large ones (BoolQ-5shot).
    Returns (scaled to [-1, 1], family -> limit in points)."""
    limits: dict[str, float] = {}
    scaled = matrix.astype(float).copy()
    for family in sorted({_family(c) for c in matrix.columns}):
        columns = [c for c in matrix.columns if _family(c) == family]
        values = np.abs(matrix[columns].to_numpy(float))
        limit = float(np.nanpercentile(values, percentile)) if np.isfinite(values).any() else 1.0
        limits[family] = limit or 1.0
        scaled[columns] = (matrix[columns] / limits[family]).clip(-1, 1)
    return scaled, limits


def _family_label(limits: dict[str, float]) -> str:
    return "gain / family limit; limits (points): " + ", ".join(f"{f} {v:.2g}" for f, v in limits.items())


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
        cmap=GAIN_CMAP if center else "viridis",
        aspect="auto",
        vmin=-limit if center else None,
        vmax=limit if center else None,
    )
    ax.set_xticks(
        range(matrix.shape[1]), [str(c) for c in matrix.columns], rotation=60, ha="right", fontsize=7
    )
    ax.set_yticks(range(matrix.shape[0]), [str(i) for i in matrix.index], fontsize=7)
    if annotate is not None and matrix.size <= 400:
        # dark cells get white text, so every label stays readable
        strong = np.abs(np.nan_to_num(values)) > 0.6 * limit
        for (i, j), text in np.ndenumerate(annotate.to_numpy()):
            colour = "white" if center and strong[i, j] else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
    ax.figure.colorbar(image, ax=ax, label=label, shrink=0.8)


def gain_distribution(gains: pd.DataFrame, tasks: list[str]) -> plt.Figure:
    """Box plots with outliers; tasks in percent and MT-Bench (1-10) on separate axes."""
    groups = [
        g
        for g in ([t for t in tasks if is_percent_task(t)], [t for t in tasks if not is_percent_task(t)])
        if g
    ]
    widths = [max(len(g), 1) for g in groups]
    fig, axes = plt.subplots(
        1,
        len(groups),
        figsize=(max(6, 0.6 * len(tasks) + 2), 4.5),
        squeeze=False,
        gridspec_kw={"width_ratios": widths},
    )
    for ax, group in zip(axes[0], groups, strict=True):
        data = [gains.loc[gains["task"] == t, "gain"].to_numpy() for t in group]
        ax.boxplot(data, showfliers=True, flierprops={"markersize": 2, "alpha": 0.4})
        ax.set_xticks(range(1, len(group) + 1), group, rotation=60, ha="right")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("benchmark (shot setting)")
        ax.set_ylabel(GAIN_LABEL if is_percent_task(group[0]) else "gain (MT-Bench points, 1-10 scale)")
    fig.suptitle(f"Gains of all {gains['model_id'].nunique()} fine-tuned models per benchmark")
    fig.tight_layout()
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
    _, limits = family_scaled(
        rows.pivot_table(index=["base_model_name", "dataset"], columns="task", values="gain")
    )
    for ax, model in zip(axes.flat, models, strict=False):
        matrix = rows[rows["base_model_name"] == model].pivot(index="dataset", columns="task", values="gain")
        matrix = matrix.reindex(index=datasets, columns=tasks)
        scaled = matrix.copy()
        for column in tasks:
            scaled[column] = (matrix[column] / limits[_family(column)]).clip(-1, 1)
        image = ax.imshow(scaled.to_numpy(float), cmap=GAIN_CMAP, aspect="auto", vmin=-1, vmax=1)
        ax.set_title(model, fontsize=9)
    for ax in list(axes.flat)[len(models) :]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xticks(range(len(tasks)), tasks, rotation=90, fontsize=6)
        ax.set_xlabel("benchmark (shot setting)")
    for ax in axes[:, 0]:
        ax.set_yticks(range(len(datasets)), datasets, fontsize=7)
        ax.set_ylabel("SFT dataset")
    fig.colorbar(image, ax=axes, label=_family_label(limits), shrink=0.6)
    fig.suptitle(f"{method}: synergy matrix (gain per SFT dataset and benchmark) of each base model")
    return fig


def agreement_heatmap(agreement: pd.DataFrame, method: str) -> plt.Figure:
    rows = agreement[agreement["method"] == method]
    mean = rows.pivot(index="dataset", columns="task", values="mean_gain")
    share = rows.pivot(index="dataset", columns="task", values="share_same_sign")
    scaled, limits = family_scaled(mean)
    fig, ax = plt.subplots(figsize=(max(8, 0.5 * mean.shape[1] + 4), 0.5 * mean.shape[0] + 2.5))
    _heatmap(
        ax,
        scaled,
        _family_label(limits),
        annotate=share.map(lambda v: f"{v:.0%}" if pd.notna(v) else ""),
        vlim=1.0,
    )
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
    """One panel per (factor, regime): mean paired difference per headline benchmark."""
    panels = list(dict.fromkeys(zip(comparisons["factor"], comparisons["stratum"], strict=True)))
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(max(7, 0.6 * len(tasks) + 3), 2.8 * len(panels)), squeeze=False
    )
    for ax, (factor, stratum) in zip(axes[:, 0], panels, strict=True):
        rows = comparisons[
            (comparisons["factor"] == factor)
            & (comparisons["stratum"] == stratum)
            & comparisons["task"].isin(tasks)
        ]
        ax.bar(
            range(len(rows)), rows["mean_diff"], color=[gain_colour(v) for v in rows["mean_diff"].fillna(0)]
        )
        for i, (share, n) in enumerate(zip(rows["share_a_wins"], rows["n_pairs"], strict=True)):
            label = "n=0" if n == 0 else f"{share:.0%}\nn={n}"
            # on a white box at the top of the panel: readable whatever the bar below
            ax.text(
                i,
                0.97,
                label,
                ha="center",
                va="top",
                fontsize=7,
                transform=ax.get_xaxis_transform(),
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
            )
        ax.axhline(0, color="grey", lw=0.8)
        low, high = ax.get_ylim()
        ax.set_ylim(low, high + 0.45 * (high - low))  # room for the labels above the bars
        ax.set_xticks(range(len(rows)), rows["task"], rotation=30, ha="right", fontsize=8)
        level_a, level_b = comparisons.loc[comparisons["factor"] == factor, ["level_a", "level_b"]].iloc[0]
        ax.set_ylabel(f"{level_a} − {level_b}\n(points)")
        ax.set_title(f"{factor}: {level_a} vs {level_b}; {stratum}", fontsize=9)
    axes[-1, 0].set_xlabel("benchmark (shot setting)")
    fig.tight_layout()
    return fig


def epoch_plot(curves: pd.DataFrame, tasks: list[str]) -> plt.Figure:
    tasks = [t for t in tasks if t in set(curves["task"])]
    cols = min(3, len(tasks))
    rows_n = int(np.ceil(len(tasks) / cols))
    fig, axes = plt.subplots(rows_n, cols, figsize=(4 * cols, 3.2 * rows_n), squeeze=False)
    for ax, task in zip(axes.flat, tasks, strict=False):
        for (study, method, size), rows in curves[curves["task"] == task].groupby(
            ["study", "method", "data_size"]
        ):
            rows = rows.sort_values("epoch")
            line = ax.plot(
                rows["epoch"], rows["mean_gain"], marker=".", label=f"{study} {method} {int(size)}"
            )[0]
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
        ax.set_ylabel("mean gain (1-10 points)" if not is_percent_task(task) else "mean gain (points)")
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
    colours = model_colours(wide["base_model_name"])
    for ax, (_, pair) in zip(axes[0], pooled.iterrows(), strict=False):
        for name, rows in wide.groupby("base_model_name"):
            ax.scatter(
                rows[pair["source_task"]],
                rows[pair["target_task"]],
                s=8,
                label=name,
                color=colours[str(name)],
            )
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
    bar.bar(
        range(len(pooled)), pooled["mean_spearman"], color=[gain_colour(v) for v in pooled["mean_spearman"]]
    )
    bar.set_xticks(range(len(pooled)), labels, rotation=60, ha="right", fontsize=7)
    bar.axhline(0, color="grey", lw=0.8)
    bar.set_ylabel("mean within-model Spearman with gain")
    bar.set_title("Predictors of gains (all benchmarks)")
    rows = values[values["task"] == task]
    colours = model_colours(rows["base_model_name"])
    for ax, predictor in zip(axes[0, 1:], predictors, strict=False):
        for name, group in rows.groupby("base_model_name"):
            ax.scatter(group[predictor], group["gain"], s=12, label=name, color=colours[str(name)])
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
    schemes = list(dict.fromkeys(errors["scheme"])) if "scheme" in errors else [None]
    fig, axes = plt.subplots(
        len(schemes),
        1,
        figsize=(max(6, 0.5 * errors["task"].nunique() + 2), 3.8 * len(schemes)),
        squeeze=False,
    )
    for ax, scheme in zip(axes[:, 0], schemes, strict=True):
        rows = errors[(errors["task"] != "all") & ((errors["scheme"] == scheme) if scheme else True)]
        x = np.arange(len(rows))
        ax.bar(x - 0.2, rows["model_mae"], width=0.4, label="perplexity model")
        ax.bar(x + 0.2, rows["baseline_mae"], width=0.4, label="baseline")
        ax.set_xticks(x, rows["task"], rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("mean absolute error\nof predicted gain (points)")
        ax.set_title(f"Predicting gains before training: {scheme or 'leave-one-dataset-out'} error")
        ax.legend()
    axes[-1, 0].set_xlabel("benchmark (shot setting)")
    fig.tight_layout()
    return fig


def model_map_plot(frame: pd.DataFrame) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7, 5.5))
    markers = {"base": "*", "full": "o", "lora": "^"}
    colours = model_colours(frame["base_model"])
    for (base, method), rows in frame.groupby(["base_model", "method"]):
        is_base = method == "base"  # hollow stars, drawn below: checkpoints near their base stay visible
        ax.scatter(
            rows["x"],
            rows["y"],
            marker=markers.get(method, "s"),
            s=320 if is_base else 45,
            facecolor="none" if is_base else colours[str(base)],
            edgecolor=colours[str(base)],
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
