"""Import the authors' released results table (``evaluation_result.csv``) into the long scores schema.

The table has one row per evaluated model: an unnamed index column, six metadata columns
(``model_name``, ``data_name``, ``lora``, ``epoch``, ``data_size``, ``lr_strategy``) and one column per
benchmark x shot setting. Every non-empty score cell becomes one row of ``common.schema``; empty cells
produce no row and are counted as missing in the quality report (``evaluation.quality``).

Validation is strict and happens before anything is converted: a wrong header, a non-numeric score or an
unknown model/dataset name raises :class:`ReleasedTableError` naming the row and the column."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pandas as pd

from common.catalog import (
    ALL_MIXTURE,
    BASE_MODELS_BY_NAME,
    LEAVE_ONE_OUT_PREFIX,
    PAPER_DATASETS,
    PRETRAIN,
)
from common.errors import InputError
from common.paths import RELEASED_TABLE_URL
from common.schema import conform
from evaluation.quality import apply_flags, assess
from evaluation.released_table import COLUMN_MAP, METADATA_COLUMNS, SCORE_COLUMNS_IN_TABLE

SOURCE = "released-table"
# The authors' evaluation_result.csv as released: a copy that differs is named in a warning (a cut-off
# download has fewer rows; an edited one another checksum).
RELEASED_TABLE_ROWS = 1027
RELEASED_TABLE_SHA256 = "de156c07817e2c8c2702d5475add0f759c11cd839367ad656ccfd2640a494c73"
# The paper evaluated with OpenCompass; the table does not say which version.
HARNESS = "opencompass (released table)"
INDEX_COLUMN = ""  # the table's first column has an empty header

LR_SCHEDULES = ("cosine", "constant")
KNOWN_DATASETS: frozenset[str] = frozenset(
    {*PAPER_DATASETS, ALL_MIXTURE, PRETRAIN} | {LEAVE_ONE_OUT_PREFIX + d for d in PAPER_DATASETS}
)


class ReleasedTableError(InputError):
    """The released table cannot be read or does not look like the authors' table."""


@dataclass
class ImportResult:
    scores: pd.DataFrame  # common.schema long table, ``flags`` set from the quality findings
    findings: dict[str, Any] = field(default_factory=dict)  # evaluation.quality.assess output
    table: pd.DataFrame | None = None  # the parsed wide table: metadata, model_id, one float column per score
    warnings: list[str] = field(default_factory=list)  # how the input differs from the released table


def is_url(source: str | Path) -> bool:
    return isinstance(source, str) and re.match(r"^https?://", source) is not None


def public_source(source: str | Path) -> str:
    """How the findings name the table: a URL without credentials or query, or a local file's name
    only (quality.json is published; the findings' sha256 identifies the file's content)."""
    if is_url(source):
        parts = urlsplit(str(source))
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return Path(source).name


def read_bytes(source: str | Path, timeout: float = 30.0) -> bytes:
    """The table's bytes at a local path or an http(s) URL."""
    if is_url(source):
        try:
            response = httpx.get(str(source), timeout=timeout, follow_redirects=True)
            response.raise_for_status()
        except httpx.HTTPError as error:
            raise ReleasedTableError(
                f"cannot download the released table from {source}: {error}. Check the URL and your "
                f"network, or pass a local copy with --csv PATH"
            ) from error
        return response.content
    path = Path(source)
    if not path.is_file():
        raise ReleasedTableError(
            f"released table not found at {path}; pass --csv PATH_OR_URL (default URL: {RELEASED_TABLE_URL})"
        )
    return path.read_bytes()


def decode_table(data: bytes, source: str | Path) -> str:
    """UTF-8 text, a byte-order mark accepted (spreadsheets save one); binary data is refused."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ReleasedTableError(
            f"{source} is not a UTF-8 text CSV (byte {data[error.start]:#04x} at offset {error.start}); "
            "pass the released evaluation_result.csv"
        ) from None
    if "\x00" in text:
        raise ReleasedTableError(
            f"{source} contains NUL bytes (offset {text.index(chr(0))}): a binary file, not the released "
            "CSV; pass the released evaluation_result.csv"
        )
    return text


def read_source(source: str | Path, timeout: float = 30.0) -> str:
    """Text of the table at a local path or an http(s) URL."""
    return decode_table(read_bytes(source, timeout), source)


def _where(index: str, line: int, column: str) -> str:
    return f"row {index} (line {line}), column {column!r}"


def _check_header(header: list[str]) -> None:
    expected = [INDEX_COLUMN, *METADATA_COLUMNS, *SCORE_COLUMNS_IN_TABLE]
    if sorted(header) == sorted(expected) and len(header) == len(expected):
        return
    missing = [c for c in expected if c not in header]
    unknown = [c for c in header if c not in expected]
    duplicated = sorted({c for c in header if header.count(c) > 1})
    raise ReleasedTableError(
        f"the table's columns do not match the released table: missing {missing}, unknown {unknown}, "
        f"duplicated {duplicated}. Unknown benchmark columns must be added to "
        f"evaluation.importer.COLUMN_MAP; expected {len(expected)} columns: {expected}"
    )


def _parse_score(text: str, where: str) -> float:
    if text.strip() == "":
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise ReleasedTableError(f"{where}: score {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ReleasedTableError(f"{where}: score {text!r} is not a finite number")
    return value


def _parse_int(text: str, where: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise ReleasedTableError(f"{where}: {text!r} is not a number") from None
    if not value.is_integer() or value < 0:
        raise ReleasedTableError(f"{where}: {text!r} is not a non-negative whole number")
    return int(value)


def _parse_metadata(record: dict[str, str], index: str, line: int) -> dict[str, Any]:
    name, dataset = record["model_name"].strip(), record["data_name"].strip()
    if name not in BASE_MODELS_BY_NAME:
        raise ReleasedTableError(
            f"{_where(index, line, 'model_name')}: unknown base model {name!r}; known: "
            f"{sorted(BASE_MODELS_BY_NAME)} (common/catalog.py)"
        )
    if dataset not in KNOWN_DATASETS:
        raise ReleasedTableError(
            f"{_where(index, line, 'data_name')}: unknown dataset {dataset!r}; known: "
            f"{sorted(KNOWN_DATASETS)}"
        )
    epoch = _parse_int(record["epoch"], _where(index, line, "epoch"))
    size = _parse_int(record["data_size"], _where(index, line, "data_size"))
    if dataset == PRETRAIN:
        return {
            "base_model_name": name,
            "dataset": dataset,
            "method": "base",
            "epoch": epoch,
            "data_size": size,
            "lr_schedule": "none",
        }
    lora = record["lora"].strip().lower()
    if lora not in ("true", "false"):
        raise ReleasedTableError(
            f"{_where(index, line, 'lora')}: expected true or false, got {record['lora']!r}"
        )
    schedule = record["lr_strategy"].strip()
    if schedule not in LR_SCHEDULES:
        raise ReleasedTableError(
            f"{_where(index, line, 'lr_strategy')}: expected one of {list(LR_SCHEDULES)}, got {schedule!r}"
        )
    return {
        "base_model_name": name,
        "dataset": dataset,
        "method": "lora" if lora == "true" else "full",
        "epoch": epoch,
        "data_size": size,
        "lr_schedule": schedule,
    }


def base_model_id(meta: dict[str, Any]) -> str:
    """``<base>/<dataset>/<method>/<size>/<schedule>/epoch-NN``; base models are their table name.
    The ``/`` of ``w/o-X`` becomes ``_`` so that the id's parts stay splittable."""
    if meta["dataset"] == PRETRAIN:
        return meta["base_model_name"]
    dataset = meta["dataset"].replace("/", "_")
    return (
        f"{meta['base_model_name']}/{dataset}/{meta['method']}/{meta['data_size']}/"
        f"{meta['lr_schedule']}/epoch-{meta['epoch']:02d}"
    )


def _assign_model_ids(table: pd.DataFrame) -> pd.DataFrame:
    """Deterministic, unique ids; rows sharing metadata get ``#2``, ``#3``... in table order and
    ``metadata_duplicate`` set (the quality report lists them)."""
    ids = pd.Series([base_model_id(row) for row in table.to_dict("records")], index=table.index)
    occurrence = ids.groupby(ids).cumcount()
    table = table.assign(metadata_duplicate=ids.duplicated(keep=False))
    table["model_id"] = [i if n == 0 else f"{i}#{n + 1}" for i, n in zip(ids, occurrence, strict=True)]
    return table


def parse_table(text: str) -> pd.DataFrame:
    """Validate the CSV text and return one row per model: ``index``, ``line``, parsed metadata,
    ``model_id``, ``metadata_duplicate``, then one float column per table score column (NaN = empty)."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise ReleasedTableError("the released table is empty (no header line)")
    _check_header(header)
    records = []
    for line, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise ReleasedTableError(f"line {line}: {len(cells)} cells, expected {len(header)}")
        record = dict(zip(header, cells, strict=True))
        index = record[INDEX_COLUMN] or str(line - 2)
        parsed = {"index": index, "line": line, **_parse_metadata(record, index, line)}
        for column in SCORE_COLUMNS_IN_TABLE:
            parsed[column] = _parse_score(record[column], _where(index, line, column))
        records.append(parsed)
    if not records:
        raise ReleasedTableError("the released table has a header but no rows")
    return _assign_model_ids(pd.DataFrame.from_records(records))


def to_long(table: pd.DataFrame) -> pd.DataFrame:
    """The parsed wide table as ``common.schema`` rows, one per non-empty score cell."""
    identity = ["model_id", "base_model_name", "dataset", "method", "data_size", "epoch", "lr_schedule"]
    long = table.melt(
        id_vars=identity, value_vars=list(SCORE_COLUMNS_IN_TABLE), var_name="column", value_name="value"
    ).dropna(subset=["value"])
    mapped = pd.DataFrame(
        [COLUMN_MAP[c] for c in long["column"]], columns=["benchmark", "shots", "metric"], index=long.index
    )
    long = pd.concat([long, mapped], axis=1)
    long["base_model"] = long["base_model_name"].map(lambda n: BASE_MODELS_BY_NAME[n].hf_id)
    long = long.assign(
        run_id=None,
        stderr=math.nan,
        n_samples=None,
        source=SOURCE,
        harness_version=HARNESS,
        evaluated_at=None,
        model_path=None,
        flags="",
    )
    return conform(long)


def _decimals(cell: str) -> int:
    return len(cell.strip().partition(".")[2])


def _cut_short_hint(text: str) -> str:
    """For a table whose last line lacks its line break: which cell looks cut, if one can tell."""
    rows = list(csv.reader(io.StringIO(text)))
    if len(rows) < 3:
        return ""
    header, last = rows[0], rows[-1]
    if len(last) < len(header):
        return f"; its last row has {len(last)} of {len(header)} cells"
    column = len(header) - 1  # a row with every cell can only be cut inside its last one
    if not last[column].strip():
        return ""
    precision = max((_decimals(r[column]) for r in rows[1:-1] if len(r) > column), default=0)
    if _decimals(last[column]) < precision:
        return (
            f"; its last cell {last[column]!r} ({header[column]}) has fewer decimals than the "
            f"column's {precision}"
        )
    return ""


def check_complete(text: str, source: str | Path, allow_truncated: bool = False) -> tuple[str, list[str]]:
    """A complete table ends with a line break; one that does not was cut off (a partial download).
    Refused unless ``allow_truncated``, which imports the complete rows (the last one only if it has
    every cell) and says so."""
    if not text or text.endswith(("\n", "\r")):
        return text, []
    lines = text.count("\n") + 1
    problem = (
        f"{source} does not end with a line break as a complete table does: it looks cut off at line {lines}"
    )
    problem += _cut_short_hint(text)
    if not allow_truncated:
        raise ReleasedTableError(
            f"{problem}. Download it again, or pass --allow-truncated to import the rest"
        )
    rows = list(csv.reader(io.StringIO(text)))
    if len(rows) > 1 and len(rows[-1]) < len(rows[0]):
        text = text[: text.rstrip("\r\n").rfind("\n") + 1]
        return text, [f"{problem}; its incomplete last row was dropped (--allow-truncated)"]
    return text + "\n", [f"{problem}; imported as it is (--allow-truncated)"]


def compare_with_release(data: bytes, n_rows: int) -> list[str]:
    """How an input differs from the authors' released table (warnings, not errors: a subset or an
    updated table is legitimate input)."""
    if hashlib.sha256(data.removeprefix(codecs.BOM_UTF8)).hexdigest() == RELEASED_TABLE_SHA256:
        return []
    warnings = [
        f"the input's SHA-256 differs from the released table's ({RELEASED_TABLE_SHA256[:12]}...): "
        "it is not the authors' evaluation_result.csv as released"
    ]
    if n_rows < RELEASED_TABLE_ROWS:
        warnings.append(
            f"the input has {n_rows} rows where the released table has {RELEASED_TABLE_ROWS}: "
            "a partial copy or download? Download it again if you meant the whole table"
        )
    return warnings


def import_released(source: str | Path = RELEASED_TABLE_URL, allow_truncated: bool = False) -> ImportResult:
    """Read, validate and convert the released table; attach the quality findings as row flags."""

    data = read_bytes(source)
    text, warnings = check_complete(decode_table(data, source), source, allow_truncated)
    table = parse_table(text)
    scores = to_long(table)
    findings = assess(table, source=public_source(source), text=text)
    warnings += compare_with_release(data, len(table))
    return ImportResult(
        scores=apply_flags(scores, findings), findings=findings, table=table, warnings=warnings
    )
