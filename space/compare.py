"""Compare 2-4 models side by side, one row per benchmark."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from space.data import NAME, Results
from space.table import GAIN, search_terms

MIN_MODELS, MAX_MODELS = 2, 4
EMPTY_MESSAGE = f"Pick {MIN_MODELS} to {MAX_MODELS} models to compare: type part of a name to search."


def model_choices(results: Results, query: str, keep: list[str], limit: int) -> list[tuple[str, str]]:
    """(readable name, model id) of the models ``keep`` plus at most ``limit`` that match every term of
    ``query`` (the leaderboard's search): a dropdown never gets the whole leaderboard."""
    ids, names = results.display["model_id"], results.display[NAME]
    index = {m: i for i, m in enumerate(ids.tolist())}
    picked = [index[m] for m in dict.fromkeys(keep) if m in index]
    terms = search_terms(query)
    matches: list[int] = []
    if terms:
        # What is typed may be a piece of the readable name the dropdown shows, or any searched field.
        text = results.search_text + " | " + pd.Series(names, index=results.search_text.index).str.lower()
        hits = text.str.contains(terms[0], regex=False)
        for term in terms[1:]:
            hits &= text.str.contains(term, regex=False)
        matches = [i for i in hits.to_numpy().nonzero()[0][: limit + len(picked)] if i not in picked]
    else:
        matches = [i for i in range(min(len(ids), limit + len(picked))) if i not in picked]
    rows = picked + matches[:limit]
    return [(str(names[i]), str(ids[i])) for i in rows]


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
