"""Compare 2-4 models side by side, one row per benchmark."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from space.data import Results
from space.table import GAIN

MIN_MODELS, MAX_MODELS = 2, 4


def compare_frame(results: Results, model_ids: list[str] | None, mode: str) -> tuple[pd.DataFrame, str]:
    """(benchmark rows x model columns, message). Unknown ids are reported, never raised."""
    model_ids = list(dict.fromkeys(model_ids or []))
    board = results.leaderboard
    known = [m for m in model_ids if m in set(board["model_id"])]
    unknown = sorted(set(model_ids) - set(known))
    if not MIN_MODELS <= len(known) <= MAX_MODELS:
        text = f"Pick {MIN_MODELS} to {MAX_MODELS} models to compare (now {len(known)})."
        if unknown:
            text += f" Unknown: {', '.join(unknown)}."
        return pd.DataFrame(columns=["benchmark"]), text
    source = results.gains if mode == GAIN else board
    rows = board.index[board["model_id"].isin(known)]
    values = source.loc[rows, results.score_names].set_axis(board.loc[rows, "model_id"], axis=0)
    table = values.loc[known].T.dropna(how="all").round(3)
    table.columns.name = None
    table = table.rename_axis("benchmark").reset_index()
    what = "gain over each base model" if mode == GAIN else "raw scores"
    return table, f"{len(known)} models, {len(table)} benchmarks, {what}."


def compare_figure(table: pd.DataFrame) -> go.Figure:
    figure = go.Figure()
    for model in table.columns[1:]:
        figure.add_trace(go.Bar(name=model, x=table["benchmark"], y=table[model]))
    figure.update_layout(
        barmode="group", height=460, margin={"b": 140}, legend={"orientation": "h", "y": 1.15}
    )
    return figure
