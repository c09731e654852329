"""Filters <-> URL query parameters, so a view can be shared as a link and restored. Decoding never
raises: values the leaderboard does not know are reported as problems (the page then shows an empty
table saying what is wrong) instead of an error page."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from space.data import Results
from space.table import AVERAGE, GAIN, IDENTITY_DISPLAY, RANK, RAW, Filters

# Filters field -> query parameter name.
PARAMS: dict[str, str] = {
    "base_models": "base",
    "languages": "lang",
    "datasets": "dataset",
    "methods": "method",
    "data_sizes": "size",
    "schedules": "schedule",
    "licenses": "license",
    "parameters": "params",
    "search": "q",
    "families": "family",
    "shots": "shots",
    "mode": "mode",
    "sort_by": "sort",
}
EPOCHS, ORDER = "epochs", "order"
SEP = ","


def choices(results: Results) -> dict[str, list]:
    """The values each choice filter can take, from the loaded leaderboard."""
    board = results.leaderboard

    def distinct(column: str) -> list:
        return sorted(board[column].dropna().unique().tolist())

    return {
        "base_models": distinct("base_model_name"),
        "languages": distinct("language"),
        "datasets": distinct("dataset"),
        "methods": distinct("method"),
        "data_sizes": [int(v) for v in distinct("data_size")],
        "schedules": distinct("lr_schedule"),
        "licenses": distinct("license"),
        "parameters": [float(v) for v in distinct("parameters")],
        "families": list(dict.fromkeys(c.family for c in results.score_columns)),
        "shots": sorted(
            {c.shots for c in results.score_columns},
            key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s),
        ),
    }


def encode(filters: Filters) -> str:
    """Query string of everything that differs from the default view."""
    default = Filters()
    pairs: list[tuple[str, str]] = []
    for name, param in PARAMS.items():
        value = getattr(filters, name)
        if value == getattr(default, name):
            continue
        pairs.append((param, SEP.join(map(format_value, value)) if isinstance(value, tuple) else str(value)))
    if filters.epoch_min is not None or filters.epoch_max is not None:
        low = "" if filters.epoch_min is None else str(filters.epoch_min)
        high = "" if filters.epoch_max is None else str(filters.epoch_max)
        pairs.append((EPOCHS, f"{low}-{high}"))
    if not filters.descending:
        pairs.append((ORDER, "asc"))
    return urlencode(pairs)


# Filters whose values are numbers (parsed from the query string with this type).
NUMERIC: dict[str, type] = {"data_sizes": int, "parameters": float}


def _number(text: str, kind: type) -> int | float | None:
    try:
        return kind(text)
    except ValueError:
        return None


def format_value(value: object) -> str:
    """A filter value as it appears in the query string (7.0 as "7", not "7.0")."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _split(raw: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in raw.split(SEP) if v.strip())


def _parse_epochs(raw: str) -> tuple[int | None, int | None]:
    low, _, high = raw.partition("-")
    return (int(low) if low.strip() else None), (int(high) if high.strip() else None)


def decode(params: Mapping[str, str], results: Results) -> tuple[Filters, list[str]]:
    """Filters from query parameters, and the problems found (unknown values, bad numbers)."""
    known = choices(results)
    values: dict[str, object] = {}
    problems: list[str] = []
    for name, param in PARAMS.items():
        raw = params.get(param)
        if raw is None:
            continue
        if name in known:
            items = _split(raw)
            if name in NUMERIC:
                bad = [v for v in items if _number(v, NUMERIC[name]) is None]
                items = tuple(NUMERIC[name](v) for v in items if v not in bad)
                problems += [f"{param}={v!r} is not a number" for v in bad]
            unknown = [v for v in items if v not in known[name]]
            if unknown:
                problems.append(
                    f"{param}: unknown value(s) {', '.join(map(repr, unknown))} "
                    f"(known: {', '.join(map(str, known[name]))})"
                )
            values[name] = items
        elif name == "mode":
            if raw in (RAW, GAIN):
                values[name] = raw
            else:
                problems.append(f"mode={raw!r} (use raw or gain)")
        elif name == "sort_by":
            sortable = {AVERAGE, RANK, *IDENTITY_DISPLAY, *results.score_names}
            if raw in sortable:
                values[name] = raw
            else:
                problems.append(f"sort={raw!r} is not a column")
        else:
            values[name] = raw
    if EPOCHS in params:
        try:
            values["epoch_min"], values["epoch_max"] = _parse_epochs(params[EPOCHS])
        except ValueError:
            problems.append(f"epochs={params[EPOCHS]!r} (use e.g. epochs=1-10)")
    order = params.get(ORDER)
    if order is not None:
        if order in ("asc", "desc"):
            values["descending"] = order == "desc"
        else:
            problems.append(f"order={order!r} (use asc or desc)")
    return Filters().replace(**values), problems


def valid_only(filters: Filters, results: Results) -> Filters:
    """The filters with unknown choice values dropped: what the UI widgets can display."""
    known = choices(results)
    cleaned = {
        name: tuple(v for v in getattr(filters, name) if v in allowed)
        for name, allowed in known.items()
        if getattr(filters, name) is not None
    }
    return filters.replace(**cleaned)
