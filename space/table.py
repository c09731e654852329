"""The leaderboard view: filters, search, column groups, raw/gain, average and sort, as pure pandas on
the cached frames of ``space.data.Results``. This is the reference semantics of the table: the page
does the same in the browser (``space/static/leaderboard.js``, no server round trip per event) and the
browser tests check both agree; the library API and ``to_csv`` use it directly."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property

import numpy as np
import pandas as pd

from common.catalog import PERCENT
from space.data import NAME, Results

RAW, GAIN = "raw", "gain"
AVERAGE = "average"
RANK = "rank"
# Display name -> leaderboard column, in display order (scores follow).
IDENTITY_DISPLAY: dict[str, str] = {
    "model": NAME,
    "model id": "model_id",
    "base model": "base_model_name",
    "params (B)": "parameters",
    "license": "license",
    "language": "language",
    "dataset": "dataset",
    "method": "method",
    "data size": "data_size",
    "epoch": "epoch",
    "schedule": "lr_schedule",
}
SORT_KEYS: tuple[str, ...] = (AVERAGE, *IDENTITY_DISPLAY)
# Filter field -> leaderboard column it restricts.
CHOICE_FILTERS: dict[str, str] = {
    "base_models": "base_model_name",
    "languages": "language",
    "datasets": "dataset",
    "methods": "method",
    "data_sizes": "data_size",
    "schedules": "lr_schedule",
    "licenses": "license",
    "parameters": "parameters",
}


@dataclass(frozen=True)
class Filters:
    """Everything that defines a view. Empty choice tuples mean "all"; ``families``/``shots`` of
    ``None`` mean every column group."""

    base_models: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    data_sizes: tuple[int, ...] = ()
    schedules: tuple[str, ...] = ()
    licenses: tuple[str, ...] = ()
    parameters: tuple[float, ...] = ()  # base model sizes in billions
    epoch_min: int | None = None
    epoch_max: int | None = None
    search: str = ""
    families: tuple[str, ...] | None = None
    shots: tuple[str, ...] | None = None
    mode: str = RAW
    sort_by: str = AVERAGE
    descending: bool = True

    def replace(self, **changes: object) -> Filters:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Filters(**values)


@dataclass
class View:
    count: int  # matching rows
    total: int  # rows in the whole leaderboard
    message: str
    score_columns: list[str]
    averaged: list[str]  # the score columns the average is the mean of (one scale)
    results: Results = field(repr=False)
    selection: Selection = field(repr=False)

    @cached_property
    def frame(self) -> pd.DataFrame:
        """Every matching row with display columns (the CSV); built only when asked for."""
        return frame_of(self.results, self.selection)


def search_terms(text: str) -> list[str]:
    """Whitespace-separated terms, lowercased; every character is literal (no regex)."""
    return [t for t in (text or "").lower().split() if t]


def row_mask(results: Results, filters: Filters) -> np.ndarray:
    board = results.leaderboard
    mask = np.ones(len(board), dtype=bool)
    for name, column in CHOICE_FILTERS.items():
        wanted = getattr(filters, name)
        if wanted:
            mask &= board[column].isin(list(wanted)).fillna(False).to_numpy(dtype=bool)
    epochs = board["epoch"]
    if filters.epoch_min is not None:
        mask &= (epochs >= filters.epoch_min).fillna(False).to_numpy(dtype=bool)
    if filters.epoch_max is not None:
        mask &= (epochs <= filters.epoch_max).fillna(False).to_numpy(dtype=bool)
    for term in search_terms(filters.search):
        if not mask.any():
            break
        # Only rows still in the view are searched: later terms get cheaper.
        index = np.flatnonzero(mask)
        hits = results.search_text.iloc[index].str.contains(term, regex=False).to_numpy(dtype=bool)
        mask[index[~hits]] = False
    return mask


def selected_columns(results: Results, filters: Filters) -> list[str]:
    return [
        c.name
        for c in results.score_columns
        if (filters.families is None or c.family in filters.families)
        and (filters.shots is None or c.shots in filters.shots)
    ]


def _sort_column(filters: Filters, scores: list[str]) -> str:
    if filters.sort_by in IDENTITY_DISPLAY or filters.sort_by in scores or filters.sort_by == RANK:
        return filters.sort_by
    return AVERAGE


def averaged_columns(results: Results, scores: list[str]) -> list[str]:
    """The columns the average means: the percentage-scale ones when any is shown, else those of the
    first column's scale (MT-Bench's 1-10 is never mixed with percentages)."""
    scales = {c.name: c.scale for c in results.score_columns}
    if not scores:
        return []
    scale = PERCENT if any(scales[c] == PERCENT for c in scores) else scales[scores[0]]
    return [c for c in scores if scales[c] == scale]


def row_average(matrix: np.ndarray) -> np.ndarray:
    """Mean of each row over its present scores; NaN for a row with none (no warning)."""
    present = ~np.isnan(matrix)
    counts = present.sum(axis=1)
    totals = np.where(present, matrix, 0.0).sum(axis=1)
    return np.divide(totals, counts, out=np.full(len(matrix), np.nan), where=counts > 0)


def sort_order(key: np.ndarray, descending: bool) -> np.ndarray:
    """Stable order of ``key`` with missing values last in both directions."""
    order = pd.Series(key).sort_values(ascending=not descending, kind="stable", na_position="last")
    return order.index.to_numpy()


@dataclass
class Selection:
    """The sorted matching rows of a view, before any frame is built."""

    rows: np.ndarray  # leaderboard row positions, in display order
    scores: list[str]
    matrix: np.ndarray  # rows x scores (raw or gain)
    average: np.ndarray
    averaged: list[str]


def select(results: Results, filters: Filters) -> Selection:
    rows = np.flatnonzero(row_mask(results, filters))
    scores = selected_columns(results, filters)
    positions = [results.score_names.index(c) for c in scores]
    source = results.gain_values if filters.mode == GAIN else results.raw_values
    matrix = source[np.ix_(rows, positions)]
    averaged = averaged_columns(results, scores)
    average = row_average(matrix[:, [scores.index(c) for c in averaged]])
    key_name = _sort_column(filters, scores)
    descending = filters.descending
    if key_name == RANK:
        key_name, descending = AVERAGE, not descending
    if key_name == AVERAGE:
        key = average
    elif key_name in IDENTITY_DISPLAY:
        key = results.display[IDENTITY_DISPLAY[key_name]][rows]
    else:
        key = matrix[:, scores.index(key_name)]
    order = sort_order(key, descending)
    return Selection(rows[order], scores, matrix[order], average[order], averaged)


def _objects(values: np.ndarray) -> pd.Series:
    # dtype=object keeps pandas from converting to Arrow strings (slow to build and to serialise).
    return pd.Series(values, dtype=object, copy=False)


def frame_of(results: Results, selection: Selection, limit: int | None = None) -> pd.DataFrame:
    """The display frame of the first ``limit`` selected rows (all when ``None``)."""
    end = len(selection.rows) if limit is None else min(limit, len(selection.rows))
    rows, average = selection.rows[:end], selection.average
    # Ranks are over the whole selection, even when only its head is built.
    ranks = pd.Series(average).rank(ascending=False, method="min").to_numpy()[:end]
    rank_values = np.array(np.nan_to_num(ranks).astype(np.int64).tolist(), dtype=object)
    rank_values[np.isnan(ranks)] = None
    columns: dict[str, pd.Series] = {RANK: _objects(rank_values)}
    columns.update(
        {name: _objects(results.display[column][rows]) for name, column in IDENTITY_DISPLAY.items()}
    )
    columns[AVERAGE] = pd.Series(np.round(average[:end], 3))
    columns.update(
        {name: pd.Series(np.round(selection.matrix[:end, i], 3)) for i, name in enumerate(selection.scores)}
    )
    columns["repo_id"] = _objects(results.display["repo_id"][rows])
    columns["revision"] = _objects(results.display["revision"][rows])
    return pd.DataFrame(columns)


def assemble(results: Results, filters: Filters) -> tuple[pd.DataFrame, list[str]]:
    """Every matching row with display columns (rank, identity, average, scores, repo), sorted."""
    selection = select(results, filters)
    return frame_of(results, selection), selection.scores


def average_note(results: Results, scores: list[str], averaged: list[str]) -> str:
    """What the average column is the mean of, in words."""
    if not averaged:
        return ""
    scale = next(c.scale for c in results.score_columns if c.name == averaged[0])
    unit = "percentage" if scale == PERCENT else f"{scale}-scale"
    text = f"average = mean of the {len(averaged)} {unit} benchmark column(s) shown"
    left_out = sorted({c.benchmark for c in results.score_columns if c.name in set(scores) - set(averaged)})
    if left_out:
        text += f" ({', '.join(left_out)} on another scale: not averaged)"
    return text


def describe(filters: Filters, count: int, total: int, scores: list[str], note: str) -> str:
    if total == 0:
        return "**No results are loaded.**"
    if count == 0:
        terms = search_terms(filters.search)
        hint = f" for the search {' + '.join(repr(t) for t in terms)}" if terms else ""
        return (
            f"**No models match these filters{hint}.** Clear a filter or the search box "
            f"(the leaderboard has {total:,} models)."
        )
    text = f"**{count:,}** of {total:,} models"
    if not scores:
        text += " · no benchmark column selected: pick a benchmark family and a shot setting"
    mode = "gain over the base model" if filters.mode == GAIN else "raw scores"
    return " · ".join(part for part in (text, mode, note) if part)


def build_view(results: Results, filters: Filters) -> View:
    selection = select(results, filters)
    count, total = len(selection.rows), len(results.leaderboard)
    note = average_note(results, selection.scores, selection.averaged)
    return View(
        count=count,
        total=total,
        results=results,
        selection=selection,
        message=describe(filters, count, total, selection.scores, note),
        score_columns=selection.scores,
        averaged=selection.averaged,
    )


def to_csv(view: View) -> str:
    """The current view as CSV: every matching row, plain model ids, repo and revision kept."""
    return view.frame.to_csv(index=False)
