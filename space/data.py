"""Load the published results dataset (a Hub dataset repo or the same layout in a local folder) into
frames that are prepared once, so every filter/sort afterwards is plain pandas on cached data."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.catalog import BASE_MODELS_BY_NAME, BENCHMARK_FAMILIES, benchmark_family, language_of, score_scale
from common.errors import InputError
from common.gains import NoBaseRowsError, gains_of_leaderboard, is_base, wide_gains
from common.schema import IDENTITY_COLUMNS, conform, parse_wide_column, to_wide
from common.submissions import SUBMISSIONS_DIR
from space.config import SpaceConfig

log = logging.getLogger(__name__)

LEADERBOARD_FILE = "data/leaderboard.parquet"
RUNS_FILE = "data/runs.parquet"
GAINS_FILE = "data/gains.parquet"
QUALITY_FILE = "quality.json"
ANALYSIS_DIR = "analysis"
# Only what the app shows is downloaded: the long scores table is not needed in the UI.
HUB_PATTERNS = [
    LEADERBOARD_FILE,
    RUNS_FILE,
    GAINS_FILE,
    QUALITY_FILE,
    f"{ANALYSIS_DIR}/*.parquet",
    f"{SUBMISSIONS_DIR}/*.parquet",
    "README.md",
]
# license / parameters: of the base model (the published columns, else common.catalog's metadata).
# submission: the request id of a model evaluated by the submissions queue (null for the study's rows).
META_COLUMNS = ("language", "repo_id", "revision", "license", "parameters", "submission")
NAME = "name"  # the readable model name the app derives (base · dataset · method · ... · epoch)
TEXT_COLUMNS = (
    "model_id",
    "base_model",
    "base_model_name",
    "language",
    "dataset",
    "method",
    "lr_schedule",
    "repo_id",
    "license",
)
FAMILY_ORDER = list(dict.fromkeys(BENCHMARK_FAMILIES.values())) + ["demo", "other"]
JUDGE_SHOTS = "judge"  # the "shot setting" of MT-Bench / AlpacaEval columns


class ResultsNotFoundError(InputError, FileNotFoundError):
    """No results dataset where the config points."""


@dataclass(frozen=True)
class ScoreColumn:
    name: str  # the leaderboard column ("gsm8k-4shot", "mtbench-total")
    benchmark: str
    shots: str  # "0", "4", ... or "judge"
    family: str
    scale: str  # "%" or "1-10" (common.catalog.score_scale): only one scale is averaged


def parse_score_column(name: str) -> ScoreColumn:
    """A ``common.schema.wide_column`` name with its benchmark, shot setting, family and scale."""
    decoded = parse_wide_column(name)
    shots = JUDGE_SHOTS if decoded.shots is None else str(decoded.shots)
    benchmark = decoded.benchmark
    return ScoreColumn(name, benchmark, shots, benchmark_family(benchmark), score_scale(benchmark))


def _column_order(column: ScoreColumn) -> tuple[Any, ...]:
    family = FAMILY_ORDER.index(column.family) if column.family in FAMILY_ORDER else len(FAMILY_ORDER)
    shots = int(column.shots) if column.shots.isdigit() else 1000
    total_first = 0 if column.name.endswith("-total") else 1
    return family, column.benchmark, shots, total_first, column.name


@dataclass
class Results:
    """The leaderboard prepared for fast views. ``gains`` has the same rows and score columns as
    ``leaderboard`` holding value minus the base model's value, from the published gains table."""

    leaderboard: pd.DataFrame
    score_columns: list[ScoreColumn]
    gains: pd.DataFrame
    search_text: pd.Series
    display: dict[str, np.ndarray]  # identity + repo columns as object arrays (fast to take and serialise)
    loaded_at: str = field(init=False)  # UTC time of loading, shown in the page's banner
    raw_values: np.ndarray = field(init=False)  # rows x score columns, float64
    gain_values: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.loaded_at = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        names = [c.name for c in self.score_columns]
        self.raw_values = self.leaderboard[names].to_numpy(dtype="float64")
        self.gain_values = self.gains[names].to_numpy(dtype="float64")

    analysis: dict[str, pd.DataFrame] = field(default_factory=dict)
    runs: pd.DataFrame | None = None
    quality: Any = None
    source: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def score_names(self) -> list[str]:
        return [c.name for c in self.score_columns]

    @classmethod
    def from_leaderboard(
        cls, leaderboard: pd.DataFrame, gains: pd.DataFrame | None = None, **extra: Any
    ) -> Results:
        """``gains``: the published long gains table (``common.gains``); without it (a plain leaderboard
        file) the gains are derived from the leaderboard by the same implementation."""
        leaderboard = normalize_leaderboard(leaderboard)
        columns = sorted(
            (
                parse_score_column(c)
                for c in leaderboard.columns
                if c not in IDENTITY_COLUMNS and c not in META_COLUMNS
            ),
            key=_column_order,
        )
        names = [c.name for c in columns]
        leaderboard = leaderboard[[*IDENTITY_COLUMNS, *META_COLUMNS, *names]]
        return cls(
            leaderboard=leaderboard,
            score_columns=columns,
            gains=_wide_gains(leaderboard, names, gains),
            search_text=build_search_text(leaderboard),
            display=plain_columns(leaderboard),
            **extra,
        )


def plain_columns(leaderboard: pd.DataFrame) -> dict[str, np.ndarray]:
    """Identity and repo columns as object arrays of str/int/None: Arrow-backed strings and nullable
    integers are several times slower to take rows from and to turn into the JSON the page gets."""
    columns = {}
    for column in (*IDENTITY_COLUMNS, *META_COLUMNS):
        series = leaderboard[column]
        values = series.astype(object).to_numpy(copy=True)
        values[series.isna().to_numpy()] = None
        columns[column] = values
    columns[NAME] = np.array(readable_names(leaderboard), dtype=object)
    return columns


def _size_label(size: Any) -> str:
    if pd.isna(size):
        return "?"
    return f"{int(size) // 1000}k" if int(size) >= 1000 and int(size) % 1000 == 0 else f"{int(size):,}"


def readable_names(leaderboard: pd.DataFrame) -> list[str]:
    """One name a person can read: base · dataset size · method · schedule · epoch (every part that
    tells two models of one run, or two runs, apart; the full id stays in the link and the CSV)."""
    names = []
    columns = ["model_id", "base_model_name", "dataset", "method", "data_size", "lr_schedule", "epoch"]
    for row in leaderboard[[*columns, "repo_id", "submission"]].itertuples(index=False):
        if not pd.isna(row.submission):
            names.append(f"{row.repo_id} (submission)")
            continue
        if row.method == "base" or pd.isna(row.method):
            names.append(f"{row.base_model_name} (base model)" if row.base_model_name else str(row.model_id))
            continue
        epoch = "?" if pd.isna(row.epoch) else int(row.epoch)
        names.append(
            f"{row.base_model_name} · {row.dataset} {_size_label(row.data_size)} · {row.method} · "
            f"{row.lr_schedule} · epoch {epoch}"
        )
    return names


def normalize_leaderboard(frame: pd.DataFrame) -> pd.DataFrame:
    """Accept the published leaderboard, or a plain ``to_wide`` table without the release columns."""
    missing = [c for c in IDENTITY_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"the leaderboard table lacks identity columns {missing}; it should be "
            "common.schema.to_wide(scores) plus language, repo_id, revision"
        )
    frame = frame.reset_index(drop=True).copy()
    if "language" not in frame.columns:
        frame["language"] = [language_of(name) for name in frame["base_model_name"]]
    for column in ("repo_id", "revision", "submission"):
        if column not in frame.columns:
            frame[column] = pd.Series([None] * len(frame), dtype="string")
    known = [BASE_MODELS_BY_NAME.get(name) for name in frame["base_model_name"]]
    if "license" not in frame.columns:
        frame["license"] = pd.array([m.license if m else None for m in known], dtype="string")
    if "parameters" not in frame.columns:
        frame["parameters"] = [m.parameters_b if m else np.nan for m in known]
    frame["parameters"] = pd.to_numeric(frame["parameters"], errors="coerce").astype("float64")
    for column in ("data_size", "epoch"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    for column in TEXT_COLUMNS + ("run_id", "revision", "submission"):
        frame[column] = frame[column].astype("string")
    for column in frame.columns:
        if column not in IDENTITY_COLUMNS and column not in META_COLUMNS:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


def _wide_gains(
    leaderboard: pd.DataFrame, score_names: list[str], published: pd.DataFrame | None
) -> pd.DataFrame:
    if published is None:
        try:
            published = gains_of_leaderboard(leaderboard, score_names)
        except NoBaseRowsError:
            published = pd.DataFrame(columns=["model_id", "task", "gain"])
    return wide_gains(published, leaderboard, score_names)


def build_search_text(leaderboard: pd.DataFrame) -> pd.Series:
    """One lowercase string per row that search terms are matched against (computed once)."""
    parts = [leaderboard[c].fillna("").astype(str) for c in TEXT_COLUMNS]
    text = parts[0].str.cat(parts[1:], sep=" | ")
    # Words people type that are not stored verbatim.
    text = text + np.where(leaderboard["method"].eq("lora").fillna(False), " | adapter", "")
    return text.str.lower()


def read_results_folder(folder: Path, source: str) -> Results:
    """Read the published layout (``data/leaderboard.parquet`` ...) or a single parquet file."""
    folder = Path(folder)
    if folder.is_file():
        return Results.from_leaderboard(_read_table_file(folder), source=source)
    board_path = folder / LEADERBOARD_FILE
    if not board_path.exists():
        raise ResultsNotFoundError(
            f"{board_path} does not exist: point --results at a results dataset "
            "folder (built by `python -m release`) or a leaderboard parquet file"
        )
    analysis = {p.stem: pd.read_parquet(p) for p in sorted((folder / ANALYSIS_DIR).glob("*.parquet"))}
    runs_path = folder / RUNS_FILE
    quality_path = folder / QUALITY_FILE
    gains_path = folder / GAINS_FILE
    board, gains = with_submissions(
        pd.read_parquet(board_path),
        pd.read_parquet(gains_path) if gains_path.exists() else None,
        read_submissions(folder),
    )
    return Results.from_leaderboard(
        board,
        gains=gains,
        analysis=analysis,
        source=source,
        runs=pd.read_parquet(runs_path) if runs_path.exists() else None,
        quality=json.loads(quality_path.read_text(encoding="utf-8")) if quality_path.exists() else None,
    )


def read_submissions(folder: Path) -> pd.DataFrame | None:
    """The submitted models' scores (``submissions/<request_id>.parquet``, written by the evaluation
    queue: ``common.submissions``) as leaderboard rows, ``submission`` naming their request."""
    frames = []
    for path in sorted((folder / SUBMISSIONS_DIR).glob("*.parquet")):
        try:
            scores = conform(pd.read_parquet(path))
        except Exception as error:  # one damaged file must not hide the leaderboard
            log.warning("skipping %s: %s", path.name, error)
            continue
        if scores.empty:
            continue
        wide = to_wide(scores)
        repo_id, _, commit = str(scores["model_path"].iloc[0]).rpartition("@")
        frames.append(wide.assign(repo_id=repo_id or None, revision=commit or None, submission=path.stem))
    if not frames:
        return None
    # A model evaluated twice (submitted again after a failure): its latest request wins.
    return pd.concat(frames, ignore_index=True).drop_duplicates("model_id", keep="last")


def with_submissions(
    board: pd.DataFrame, gains: pd.DataFrame | None, submissions: pd.DataFrame | None
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The study's leaderboard with the submitted models appended (and, when the gains are published,
    the submissions' gains over the same base models' rows)."""
    if submissions is None:
        return board, gains
    board = normalize_leaderboard(board)
    board = board[~board["model_id"].isin(set(submissions["model_id"]))]
    combined = normalize_leaderboard(
        pd.concat([board, normalize_leaderboard(submissions)], ignore_index=True)
    )
    if gains is None:
        return combined, None
    scores = [c for c in combined.columns if c not in IDENTITY_COLUMNS and c not in META_COLUMNS]
    submitted = combined["submission"].notna()
    try:
        extra = gains_of_leaderboard(combined[submitted | is_base(combined)], scores)
    except NoBaseRowsError:
        return combined, gains
    extra = extra[extra["model_id"].isin(set(combined.loc[submitted, "model_id"]))]
    return combined, pd.concat([gains, extra], ignore_index=True)


def _read_table_file(path: Path) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    # A long scores table (scores.parquet) is pivoted; a wide leaderboard is used as is.
    return to_wide(frame) if "benchmark" in frame.columns else frame


def download_results(config: SpaceConfig) -> Path:
    """Fetch the results dataset from the configured Hub (only the files the app shows)."""
    from huggingface_hub import snapshot_download

    return Path(
        snapshot_download(
            config.repo,
            repo_type="dataset",
            revision=config.revision,
            endpoint=config.endpoint,
            allow_patterns=HUB_PATTERNS,
        )
    )


def load_results(config: SpaceConfig) -> Results:
    """Hub first (when a repo is set), then the local fallback; an empty leaderboard with a warning
    rather than a crash when neither works, so the page always renders."""
    warnings: list[str] = []
    if config.repo:
        where = f"{config.endpoint}/datasets/{config.repo}" + (
            f"@{config.revision}" if config.revision else ""
        )
        try:
            return read_results_folder(download_results(config), source=where)
        except Exception as error:  # any Hub/network/format failure falls back to the local copy
            log.warning("could not load %s: %s", where, error)
            warnings.append(f"Could not load the results dataset {where} ({type(error).__name__}: {error}).")
    if config.local_path:
        try:
            results = read_results_folder(config.local_path, source=str(config.local_path))
            results.warnings = warnings + results.warnings
            return results
        except Exception as error:
            warnings.append(f"Could not read the local results {config.local_path} ({error}).")
    if not warnings:
        warnings.append(
            "No results configured: pass --results PATH_OR_REPO or set SPACE_RESULTS_REPO "
            "(Hub dataset) or SPACE_RESULTS_PATH (local folder)."
        )
    return Results.from_leaderboard(
        pd.DataFrame(columns=list(IDENTITY_COLUMNS)), source="none", warnings=warnings
    )


class ResultsStore:
    """The loaded results, shared by every session; ``reload`` swaps them in without a restart."""

    def __init__(self, config: SpaceConfig, results: Results | None = None) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._results = results if results is not None else load_results(config)

    @property
    def results(self) -> Results:
        return self._results

    def reload(self) -> Results:
        fresh = load_results(self.config)
        with self._lock:
            self._results = fresh
        return fresh
