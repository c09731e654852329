"""Plots of the study's findings. Each reads its published analysis table (docs/ARCHITECTURE.md,
"Analysis tables"); the synergy, consistency, epoch and LoRA-vs-full plots fall back to gains computed
here from the leaderboard when the table is not published, and the others say once, in their caption,
what is missing and which command produces it. Every function returns ``(plotly figure or None, caption
markdown)``: ``None`` when there is nothing to plot."""

from __future__ import annotations

from itertools import cycle

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from common.catalog import PAPER_BASE_MODELS, PAPER_DATASETS, PERCENT
from common.palette import PLOTLY_GAIN_SCALE, gain_colour
from space.data import Results

Plot = tuple[go.Figure | None, str]
SECTIONS = (
    "Training–task synergy",
    "Cross-model consistency",
    "Epochs",
    "LoRA vs full fine-tuning",
    "Predictors of the gain",
    "Layer-wise change vs gain",
    "Model map",
)
REPORT = "`python -m analysis report --scores ROOT/scores.parquet --out ROOT/report`"
PUBLISH = "then publish the results dataset again (`python -m release.publish --root ROOT`)"
DIVERGING = PLOTLY_GAIN_SCALE  # positive blue, negative red: the report uses the same (common/palette.py)
MAIN_SIZE = 1000  # the main condition: 1k samples, cosine schedule, final epoch


def note(text: str) -> go.Figure:
    """An empty figure that says why there is no plot."""
    figure = go.Figure()
    figure.add_annotation(
        text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font={"size": 14}
    )
    figure.update_layout(
        xaxis={"visible": False},
        yaxis={"visible": False},
        height=260,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
    )
    return figure


def missing(results: Results, table: str, what: str, inputs: str) -> Plot:
    """No plot, and one caption: which table is missing and the command that produces it. When no
    analysis table at all is published, the report did not run; otherwise it ran without ``inputs``."""
    advice = f"{inputs}, {PUBLISH}" if results.analysis else f"run {REPORT}, {PUBLISH}"
    return None, f"*No {what}: the results dataset has no `analysis/{table}.parquet`. To add it, {advice}.*"


def default_task(results: Results) -> str | None:
    """The benchmark the epoch and predictor plots open on: the percentage-scale column whose gains
    vary most across fine-tuned models (a flat benchmark, e.g. HumanEval at the floor, shows nothing)."""
    tuned = results.leaderboard["method"].ne("base").fillna(False).to_numpy(dtype=bool)
    best, best_spread = None, 0.0
    for i, column in enumerate(results.score_columns):
        gains = results.gain_values[tuned, i]
        gains = gains[~np.isnan(gains)]
        if column.scale != PERCENT or len(gains) < 2:
            continue
        spread = float(np.std(gains))
        if spread > best_spread:
            best, best_spread = column.name, spread
    return best or (results.score_names[0] if results.score_names else None)


def long_gains(results: Results) -> pd.DataFrame:
    """Fine-tuned rows x score columns as a long table of gains over the base model."""
    board = results.leaderboard
    keep = board["method"].ne("base").fillna(False)
    identity = board.loc[keep, ["base_model_name", "method", "dataset", "data_size", "epoch", "lr_schedule"]]
    gains = pd.concat([identity, results.gains.loc[keep]], axis=1)
    return gains.melt(id_vars=list(identity.columns), var_name="task", value_name="gain").dropna(
        subset=["gain"]
    )


def synergy_table(results: Results) -> tuple[pd.DataFrame, str]:
    if "synergy" in results.analysis:
        return results.analysis["synergy"], "analysis/synergy.parquet"
    gains = long_gains(results)
    main = gains[
        gains["dataset"].isin(PAPER_DATASETS)
        & gains["data_size"].eq(MAIN_SIZE)
        & gains["lr_schedule"].eq("cosine")
    ]
    final = main.groupby(["base_model_name", "method", "dataset"])["epoch"].transform("max")
    main = main[main["epoch"].eq(final)]
    table = main.groupby(["base_model_name", "method", "dataset", "task"], as_index=False)["gain"].mean()
    return table, "gains computed in the app from the leaderboard (analysis/synergy.parquet not published)"


def synergy_choices(results: Results) -> tuple[list[str], list[str]]:
    table, _ = synergy_table(results)
    paper_order = [m.table_name for m in PAPER_BASE_MODELS]
    models = sorted(
        table["base_model_name"].dropna().unique(),
        key=lambda m: (paper_order.index(m) if m in paper_order else len(paper_order), m),
    )
    return models, sorted(table["method"].dropna().unique())


def _task_order(results: Results, tasks: pd.Index) -> list[str]:
    order = [t for t in results.score_names if t in set(tasks)]
    return order + sorted(set(tasks) - set(order))


def synergy_figure(results: Results, base_model: str | None, method: str | None) -> Plot:
    table, source = synergy_table(results)
    cells = table[table["base_model_name"].eq(base_model) & table["method"].eq(method)]
    if cells.empty:
        return note(f"No synergy cells for {base_model} / {method}."), f"*Source: {source}.*"
    matrix = cells.pivot_table(index="dataset", columns="task", values="gain", aggfunc="mean")
    matrix = matrix[_task_order(results, matrix.columns)]
    figure = go.Figure(
        go.Heatmap(
            z=matrix.to_numpy(),
            x=list(matrix.columns),
            y=list(matrix.index),
            colorscale=DIVERGING,
            zmid=0,
            colorbar={"title": "gain"},
            hovertemplate="dataset %{y}<br>task %{x}<br>gain %{z:.2f}<extra></extra>",
        )
    )
    figure.update_layout(
        title=f"Gain over the base model: {base_model}, {method}", height=460, margin={"l": 140, "b": 120}
    )
    return figure, f"*Rows: SFT dataset; columns: benchmark. Source: {source}.*"


def _correlations_from_synergy(results: Results, method: str | None) -> pd.DataFrame:
    table, _ = synergy_table(results)
    cells = table[table["method"].eq(method)]
    wide = cells.pivot_table(index=["dataset", "task"], columns="base_model_name", values="gain")
    return wide.corr(min_periods=5)


def consistency_figure(results: Results, method: str | None) -> Plot:
    if "model_correlation" in results.analysis:
        pairs = results.analysis["model_correlation"]
        pairs = pairs[pairs["method"].eq(method)]
        both = pd.concat([pairs, pairs.rename(columns={"model_a": "model_b", "model_b": "model_a"})])
        matrix = both.pivot_table(index="model_a", columns="model_b", values="pearson")
        for model in matrix.index.intersection(matrix.columns):
            matrix.loc[model, model] = 1.0
        source = "analysis/model_correlation.parquet"
    else:
        matrix = _correlations_from_synergy(results, method)
        source = "correlations of the synergy matrices computed in the app"
    if matrix.empty:
        return note(f"No cross-model correlations for {method}."), f"*Source: {source}.*"
    figure = go.Figure(
        go.Heatmap(
            z=matrix.to_numpy(),
            x=list(matrix.columns),
            y=list(matrix.index),
            colorscale=DIVERGING,
            zmin=-1,
            zmax=1,
            colorbar={"title": "Pearson r"},
            hovertemplate="%{y} vs %{x}<br>r = %{z:.2f}<extra></extra>",
        )
    )
    figure.update_layout(
        title=f"How alike are the models' synergy matrices? ({method})",
        height=460,
        margin={"l": 170, "b": 150},
    )
    return figure, f"*Pearson correlation of gains over (dataset, benchmark) cells. Source: {source}.*"


def epoch_table(results: Results) -> tuple[pd.DataFrame, str]:
    if "epoch_curves" in results.analysis:
        return results.analysis["epoch_curves"], "analysis/epoch_curves.parquet"
    gains = long_gains(results)
    gains = gains[gains["lr_schedule"].eq("constant")].assign(study="size-constant")
    curves = gains.groupby(["study", "method", "data_size", "task", "epoch"], as_index=False).agg(
        mean_gain=("gain", "mean"), n_models=("gain", "size")
    )
    return curves, "mean gains computed in the app (constant-schedule checkpoints)"


def epoch_figure(results: Results, task: str | None) -> Plot:
    curves, source = epoch_table(results)
    curves = curves[curves["task"].eq(task)]
    if curves.empty:
        return note(f"No epoch curves for {task}."), f"*Source: {source}.*"
    figure = go.Figure()
    for (study, method, size), line in curves.groupby(["study", "method", "data_size"]):
        line = line.sort_values("epoch")
        figure.add_trace(
            go.Scatter(
                x=line["epoch"],
                y=line["mean_gain"],
                mode="lines+markers",
                name=f"{study} · {method} · {int(size):,} samples",
            )
        )
    figure.add_hline(y=0, line_dash="dot", line_color="gray")
    figure.update_layout(
        title=f"Mean gain by epoch: {task}", xaxis_title="epoch", yaxis_title="mean gain", height=420
    )
    return figure, f"*Mean gain over base models and datasets. Source: {source}.*"


def lora_full_table(results: Results) -> tuple[pd.DataFrame, str]:
    """Per task, mean of (full − LoRA) over runs that differ only in the method."""
    if "factor_comparisons" in results.analysis:
        table = results.analysis["factor_comparisons"]
        table = table[table["factor"].eq("method")]
        if "stratum" in table:  # regimes are never pooled: show the main one (1k samples, one dataset)
            strata = list(dict.fromkeys(table["stratum"]))
            main = next(
                (x for x in strata if x.startswith(f"single datasets, {MAIN_SIZE} ")),
                strata[0] if strata else None,
            )
            table = table[table["stratum"].eq(main)]
        return table, "analysis/factor_comparisons.parquet"
    gains = long_gains(results)
    keys = ["base_model_name", "dataset", "data_size", "epoch", "lr_schedule", "task"]
    paired = gains.pivot_table(index=keys, columns="method", values="gain", aggfunc="mean")
    if not {"full", "lora"} <= set(paired.columns):
        return pd.DataFrame(columns=["task", "mean_diff", "level_a", "level_b"]), "no paired runs"
    diff = (paired["full"] - paired["lora"]).dropna().groupby(level="task")
    table = pd.DataFrame({"mean_diff": diff.mean(), "n_pairs": diff.size()}).reset_index()
    return table.assign(level_a="full", level_b="lora"), "paired runs of the leaderboard, computed in the app"


def lora_full_figure(results: Results) -> Plot:
    table, source = lora_full_table(results)
    if table.empty:
        return note("No runs differ only in LoRA vs full fine-tuning."), f"*Source: {source}.*"
    table = table.set_index("task").loc[_task_order(results, pd.Index(table["task"]))].reset_index()
    first, second = table["level_a"].iloc[0], table["level_b"].iloc[0]
    figure = go.Figure(
        go.Bar(
            x=table["task"],
            y=table["mean_diff"],
            marker_color=[gain_colour(v) for v in table["mean_diff"]],
            hovertemplate="%{x}<br>mean difference %{y:.2f}<extra></extra>",
        )
    )
    figure.update_layout(
        title=f"{first} minus {second}: mean score difference per benchmark",
        yaxis_title=f"{first} − {second}",
        height=420,
        margin={"b": 120},
    )
    return figure, f"*Positive bars: {first} fine-tuning is better. Source: {source}.*"


def predictor_options(results: Results) -> list[str]:
    table = results.analysis.get("predictor_values")
    if table is None:
        return []
    skip = {"gain", "n_datasets", "n_models"}
    return [
        c
        for c in table.columns
        if c not in skip
        and pd.api.types.is_numeric_dtype(table[c])
        and not pd.api.types.is_bool_dtype(table[c])
        and table[c].notna().any()
    ]


def predictor_figure(results: Results, predictor: str | None, task: str | None) -> Plot:
    table = results.analysis.get("predictor_values")
    if table is None:
        return missing(
            results,
            "predictor_values",
            "predictor values",
            f"run {REPORT} (it writes the table whenever it has gains)",
        )
    if not predictor_options(results):
        return None, (
            "*The predictor table has no predictor values: the report ran without perplexities or "
            "training data. To add them, run `python -m evaluation perplexity --root ROOT` and pass `--perplexity "
            f"ROOT/perplexity.parquet --data-dir ROOT/data` to {REPORT}, {PUBLISH}.*"
        )
    cells = table[table["task"].eq(task)] if task else table
    if predictor not in cells.columns or cells[predictor].isna().all():
        return note(f"No {predictor} values for {task}."), "*Source: analysis/predictor_values.parquet.*"
    figure = go.Figure()
    for model, points in cells.groupby("base_model_name"):
        figure.add_trace(
            go.Scatter(
                x=points[predictor],
                y=points["gain"],
                mode="markers",
                name=model,
                text=points["dataset"],
                hovertemplate="%{text}<br>" + predictor + " %{x:.3g}<br>gain %{y:.2f}",
            )
        )
    figure.update_layout(
        title=f"Does {predictor} predict the gain on {task}?",
        xaxis_title=predictor,
        yaxis_title="gain",
        height=420,
    )
    return figure, "*One point per (base model, SFT dataset). Source: analysis/predictor_values.parquet.*"


def layers_figure(results: Results) -> Plot:
    table = results.analysis.get("layer_correlation")
    if table is None:
        return missing(
            results,
            "layer_correlation",
            "layer-wise curves",
            "run `python -m analysis layers --root ROOT` (it needs the checkpoints' weights) and pass "
            f"`--layers ROOT/layers.parquet` to {REPORT}",
        )
    table = table.sort_values("depth_bin")
    figure = go.Figure()
    for column in ("pearson", "spearman"):
        if column in table.columns:
            figure.add_trace(
                go.Scatter(
                    x=table["depth_bin"],
                    y=table[column],
                    mode="lines+markers",
                    name=f"{column} (change vs gain)",
                )
            )
    if "mean_relative" in table.columns:
        figure.add_trace(
            go.Scatter(
                x=table["depth_bin"],
                y=table["mean_relative"],
                mode="lines",
                name="mean relative change",
                yaxis="y2",
                line={"dash": "dash"},
            )
        )
    figure.update_layout(
        title="Weight change vs gain across layers",
        xaxis_title="normalized depth (0-1)",
        yaxis_title="correlation",
        height=420,
        yaxis2={"title": "relative change", "overlaying": "y", "side": "right"},
    )
    return figure, "*Source: analysis/layer_correlation.parquet.*"


MAP_SYMBOLS = {"base": "star-open", "full": "circle", "lora": "triangle-up"}


def model_map_figure(results: Results) -> Plot:
    table = results.analysis.get("model_map")
    if table is None:
        return missing(
            results,
            "model_map",
            "model map",
            "run `python -m analysis map --root ROOT` (it needs the models' weights) and pass "
            f"`--model-map ROOT/model_map.parquet` to {REPORT}",
        )
    figure = go.Figure()
    palette = dict(
        zip(sorted(table["base_model"].unique()), cycle(qualitative.Plotly))
    )  # a colour per family
    for (base, method), rows in table.groupby(["base_model", "method"], sort=True):
        figure.add_trace(
            go.Scatter(
                x=rows["x"],
                y=rows["y"],
                mode="markers",
                name=f"{base} ({method})",
                text=rows["model_id"],
                hovertemplate="%{text}<extra></extra>",
                marker={
                    "symbol": MAP_SYMBOLS.get(method, "square"),
                    "size": 18 if method == "base" else 8,
                    "color": palette[base],
                    "line": {"width": 2, "color": palette[base]},
                },
            )
        )
    first = table.iloc[0]
    figure.update_layout(
        title="Model map: models placed by their log-likelihoods of a fixed text set",
        height=480,
        xaxis_title=f"PC1 of centred log-likelihoods ({first['x_variance']:.0%} of variance)",
        yaxis_title=f"PC2 ({first['y_variance']:.0%} of variance)",
    )
    return (
        figure,
        "*Close models predict text alike; stars are base models. Source: analysis/model_map.parquet.*",
    )


def all_figures(
    results: Results,
    base_model: str | None,
    method: str | None,
    task: str | None,
    predictor: str | None,
) -> list[Plot]:
    """Every section's plot and caption, in ``SECTIONS`` order."""
    return [
        synergy_figure(results, base_model, method),
        consistency_figure(results, method),
        epoch_figure(results, task),
        lora_full_figure(results),
        predictor_figure(results, predictor, task),
        layers_figure(results),
        model_map_figure(results),
    ]
