"""The leaderboard view: filters, search, column groups, raw/gain, average, sort and render, as pure
pandas on the cached frames of ``space.data.Results``. Every UI event and the CSV export go through
``build_view`` so what people see and what they download cannot disagree."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from space.config import SpaceConfig
from space.data import Results

RAW, GAIN = "raw", "gain"
AVERAGE = "average"
RANK = "rank"
# Display name -> leaderboard column, in display order (scores follow).
IDENTITY_DISPLAY: dict[str, str] = {
    "model": "model_id",
    "base model": "base_model_name",
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
    frame: pd.DataFrame  # every matching row, display columns (the CSV)
    shown: pd.DataFrame  # the rendered rows (at most ``max_rows``), model names as links
    total: int  # rows in the whole leaderboard
    message: str
    score_columns: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.frame)


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
    return [c.name for c in results.score_columns
            if (filters.families is None or c.family in filters.families)
            and (filters.shots is None or c.shots in filters.shots)]


def _sort_column(filters: Filters, scores: list[str]) -> str:
    if filters.sort_by in IDENTITY_DISPLAY or filters.sort_by in scores or filters.sort_by == RANK:
        return filters.sort_by
    return AVERAGE


def assemble(results: Results, filters: Filters) -> tuple[pd.DataFrame, list[str]]:
    """Matching rows with display columns: rank, identity, average, scores, repo; sorted."""
    mask = row_mask(results, filters)
    scores = selected_columns(results, filters)
    source = results.gains if filters.mode == GAIN else results.leaderboard
    board = results.leaderboard.loc[mask]
    values = source.loc[mask, scores]
    frame = board[list(IDENTITY_DISPLAY.values())].set_axis(list(IDENTITY_DISPLAY), axis=1)
    average = values.mean(axis=1, skipna=True) if scores else pd.Series(np.nan, index=values.index)
    frame.insert(0, RANK, average.rank(ascending=False, method="min").astype("Int64"))
    frame[AVERAGE] = average.round(3)
    frame = pd.concat([frame, values.round(3)], axis=1)
    frame["repo_id"] = board["repo_id"]
    frame["revision"] = board["revision"]
    key = _sort_column(filters, scores)
    ascending = not filters.descending
    if key == RANK:
        key, ascending = AVERAGE, not ascending
    frame = frame.sort_values(key, ascending=ascending, kind="stable", na_position="last")
    return frame.reset_index(drop=True), scores


def _links(frame: pd.DataFrame, config: SpaceConfig) -> list[str]:
    """The model column as markdown links to each model's repo at its revision."""
    out = []
    for model, repo, revision in zip(frame["model"], frame["repo_id"], frame["revision"], strict=True):
        url = config.model_link(None if pd.isna(repo) else repo, None if pd.isna(revision) else revision)
        name = str(model).replace("[", "\\[").replace("]", "\\]")
        out.append(f"[{name}]({url})" if url else name)
    return out


def render(frame: pd.DataFrame, config: SpaceConfig) -> pd.DataFrame:
    shown = frame.head(config.max_rows).drop(columns=["repo_id", "revision"])
    return shown.assign(model=_links(frame.head(config.max_rows), config))


def describe(filters: Filters, count: int, total: int, shown: int, scores: list[str]) -> str:
    if total == 0:
        return "**No results are loaded.**"
    if count == 0:
        terms = search_terms(filters.search)
        hint = f" for the search {' + '.join(repr(t) for t in terms)}" if terms else ""
        return (f"**No models match these filters{hint}.** Clear a filter or the search box "
                f"(the leaderboard has {total:,} models).")
    text = f"**{count:,}** of {total:,} models"
    if shown < count:
        text += f" · showing the first {shown:,} (download the CSV for all rows)"
    if not scores:
        text += " · no benchmark column selected: pick a benchmark family and a shot setting"
    mode = "gain over the base model" if filters.mode == GAIN else "raw scores"
    return f"{text} · {mode}"


def build_view(results: Results, filters: Filters, config: SpaceConfig) -> View:
    frame, scores = assemble(results, filters)
    shown = render(frame, config)
    message = describe(filters, len(frame), len(results.leaderboard), len(shown), scores)
    return View(frame=frame, shown=shown, total=len(results.leaderboard), message=message,
                score_columns=scores)


def datatypes(shown: pd.DataFrame) -> list[str]:
    """Gradio Dataframe column types: the model column is a markdown link, numbers sort as numbers."""
    text = {"model", "base model", "language", "dataset", "method", "schedule"}
    return ["markdown" if c == "model" else "str" if c in text else "number" for c in shown.columns]


def to_csv(view: View) -> str:
    """The current view as CSV: every matching row, plain model ids, repo and revision kept."""
    return view.frame.to_csv(index=False)
