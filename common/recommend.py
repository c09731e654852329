"""What should I train on? For a base model (one of the results', or a new one described by its base
scores and/or its perplexity on the SFT datasets) and a target (a leaderboard task such as
``gsm8k-4shot``, a benchmark such as ``gsm8k``, or a family such as ``math``), rank the SFT datasets by
predicted gain, with intervals, the evidence behind them and how reliable the prediction is.

The prediction is a similarity-weighted mean of the measured main-condition gains of the other base
models: a model counts more the closer its profile (base scores per task, log-perplexity per SFT dataset;
each standardised over the models) is to the target model's. The baseline it is measured against is the
plain mean over models (what one would guess from the study's dataset-effect table). Reliability is the
leave-one-model-out error of both: each base model in turn is predicted from the others alone. The
intervals are that error's residual quantiles. The one implementation: ``python -m analysis recommend``
and the Space's "What should I train on?" tab both call ``recommend``.

Inputs are published tables (no analysis internals): ``synergy`` (the analysis table of that name:
``base_model_name``, ``method``, ``dataset``, ``task``, ``gain``), base-model scores (``base_scores_of``
a wide leaderboard) and optionally per (base model, dataset) perplexities."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from common.catalog import PERCENT_RANGE, benchmark_family, score_range
from common.errors import InputError
from common.gains import is_base
from common.schema import IDENTITY_COLUMNS, JUDGED_BENCHMARKS, parse_wide_column

# Distance scale of the similarity weights, exp(-distance / SCALE), the distance being the root mean
# square of standardised profile differences. Chosen on the released table's leave-one-model-out error
# (0.3-1.0 all beat the plain mean there; 0.5 had the best rank agreement); smaller trusts fewer models.
SIMILARITY_SCALE = 0.5
# Judged benchmarks are ranked on their overall score, not on each judge category.
HEADLINE_METRICS = ("total", "win_rate")
SCORE_PREFIX = "score:"
PERPLEXITY_PREFIX = "log_perplexity:"


class RecommendError(InputError):
    """A recommendation that cannot be made from these inputs; the message names the fix."""


# --- the target: which tasks, on which scale ------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # "task", "benchmark" or "family"
    tasks: tuple[str, ...]
    unit: str  # what a gain of the target is measured in
    normalised: bool  # mixed scales: each task's gain as % of its score range before averaging


def benchmark_of(task: str) -> str:
    return parse_wide_column(str(task)).benchmark


def _headline(tasks: list[str]) -> list[str]:
    """The tasks of one benchmark that rank it: a judged benchmark's overall score when present."""
    judged = [t for t in tasks if parse_wide_column(t).metric in HEADLINE_METRICS]
    return judged if judged and benchmark_of(judged[0]) in JUDGED_BENCHMARKS else tasks


def target_choices(tasks: Iterable[str]) -> dict[str, list[str]]:
    """Every target name the tasks allow, by kind (families, benchmarks, tasks), sorted."""
    tasks = sorted(set(map(str, tasks)))
    benchmarks = sorted({benchmark_of(t) for t in tasks})
    return {
        "family": sorted({benchmark_family(b) for b in benchmarks}),
        "benchmark": benchmarks,
        "task": tasks,
    }


KINDS = ("family", "benchmark", "task")


def resolve_target(name: str, tasks: Iterable[str]) -> Target:
    """A task, a benchmark or a family among ``tasks`` (case-insensitive; ``family:math`` names the
    kind where a name is both, as ``math`` is: a bare name is the task, else the benchmark, else the
    family). An error lists the choices."""
    tasks = sorted(set(map(str, tasks)))
    kind, _, rest = name.strip().partition(":")
    wanted = (rest if kind.strip().lower() in KINDS else name).strip().lower()
    kinds = [kind.strip().lower()] if kind.strip().lower() in KINDS else list(KINDS[::-1])
    chosen: list[str] = []
    for kind in kinds:
        chosen = _tasks_of(kind, wanted, tasks)
        if chosen:
            break
    if not chosen:
        choices = target_choices(tasks)
        every = [*choices["family"], *choices["benchmark"], *choices["task"]]
        close = difflib.get_close_matches(wanted, every, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise RecommendError(
            f"unknown target {name!r}{hint}: give a family ({', '.join(choices['family'])}), a benchmark "
            f"({', '.join(choices['benchmark'])}) or a leaderboard task such as {choices['task'][0]!r}"
        )
    ranges = {score_range(benchmark_of(t)) for t in chosen}
    normalised = len(ranges) > 1
    if normalised:
        unit = "% of each score's range"
    elif ranges == {PERCENT_RANGE}:
        unit = "points"
    else:
        low, high = ranges.pop()
        unit = f"points on the {low:g}-{high:g} scale"
    return Target(wanted, kind, tuple(chosen), unit, normalised)


def _tasks_of(kind: str, wanted: str, tasks: list[str]) -> list[str]:
    if kind == "task":
        return [t for t in tasks if t.lower() == wanted]
    by_benchmark: dict[str, list[str]] = {}
    for task in tasks:
        by_benchmark.setdefault(benchmark_of(task), []).append(task)
    if kind == "benchmark":
        return _headline(by_benchmark.get(wanted, []))
    return [
        t for b, ts in sorted(by_benchmark.items()) if benchmark_family(b) == wanted for t in _headline(ts)
    ]


def target_gains(synergy: pd.DataFrame, target: Target) -> pd.DataFrame:
    """Per (base model, dataset): the target's gain, the mean over its tasks (each as % of its score
    range when the target mixes scales)."""
    rows = synergy[synergy["task"].astype(str).isin(target.tasks)].dropna(subset=["gain"])
    gain = rows["gain"].astype(float)
    if target.normalised:
        width = rows["task"].map(lambda t: np.subtract(*score_range(benchmark_of(t))[::-1]))
        gain = gain * 100.0 / width.astype(float)
    frame = rows.assign(gain=gain).groupby(["base_model_name", "dataset"], observed=True)["gain"].mean()
    return frame.reset_index()


# --- model profiles and similarity -----------------------------------------------------------------


def base_scores_of(leaderboard: pd.DataFrame) -> pd.DataFrame:
    """Long base-model scores (``base_model_name``, ``task``, ``value``) of a wide leaderboard: its base
    rows, one row per score column."""
    base = leaderboard[is_base(leaderboard)]
    scores = [c for c in leaderboard.columns if c not in IDENTITY_COLUMNS and _is_score_column(c)]
    long = base[["base_model_name", *scores]].melt(id_vars="base_model_name", var_name="task")
    return long.dropna(subset=["value", "base_model_name"]).drop_duplicates(["base_model_name", "task"])


def _is_score_column(name: str) -> bool:
    column = parse_wide_column(name)
    return column.shots is not None or column.benchmark in JUDGED_BENCHMARKS


def model_profiles(base_scores: pd.DataFrame, perplexity: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per base model: ``score:<task>`` (base score) and ``log_perplexity:<dataset>`` columns.
    ``perplexity``: ``base_model_name``, ``dataset``, ``perplexity`` (one row per pair)."""
    scores = base_scores.pivot_table(index="base_model_name", columns="task", values="value", aggfunc="first")
    parts = [scores.add_prefix(SCORE_PREFIX)]
    if perplexity is not None and not perplexity.empty:
        ppl = perplexity.dropna(subset=["perplexity"]).drop_duplicates(["base_model_name", "dataset"])
        logs = ppl.assign(value=np.log(ppl["perplexity"].astype(float)))
        parts.append(
            logs.pivot(index="base_model_name", columns="dataset", values="value").add_prefix(
                PERPLEXITY_PREFIX
            )
        )
    profiles = pd.concat(parts, axis=1)
    profiles.index = profiles.index.astype(str)
    return profiles.astype(float)


def new_profile(scores: Mapping[str, float], perplexity: Mapping[str, float]) -> pd.Series:
    """A new base model's profile from its base scores per task and perplexity per SFT dataset."""
    bad = {k: v for k, v in perplexity.items() if not (math.isfinite(float(v)) and float(v) > 0)}
    if bad:
        raise RecommendError(f"perplexity must be a positive number; got {bad}")
    values = {f"{SCORE_PREFIX}{k}": float(v) for k, v in scores.items()}
    values |= {f"{PERPLEXITY_PREFIX}{k}": math.log(float(v)) for k, v in perplexity.items()}
    return pd.Series(values, dtype=float)


def check_profile(profile: pd.Series, profiles: pd.DataFrame) -> None:
    """A new model's profile names only tasks and datasets the results know."""
    unknown = sorted(set(profile.index) - set(profiles.columns))
    has_perplexity = any(c.startswith(PERPLEXITY_PREFIX) for c in profiles.columns)
    if any(u.startswith(PERPLEXITY_PREFIX) for u in unknown) and not has_perplexity:
        raise RecommendError(
            "the results hold no perplexity of their base models on the SFT datasets (no perplexity "
            "table), so a new model cannot be matched by its perplexity: give its base scores per task"
        )
    if unknown:
        known = sorted(c.split(":", 1)[1] for c in profiles.columns)
        names = [u.split(":", 1)[1] for u in unknown]
        raise RecommendError(
            f"the new model's profile names {names}, which the results do not hold; use tasks and SFT "
            f"datasets among: {', '.join(known)}"
        )


def similarity(profiles: pd.DataFrame, profile: pd.Series, scale: float = SIMILARITY_SCALE) -> pd.DataFrame:
    """Per model of ``profiles``: ``distance`` to ``profile`` (root mean square of the differences of
    the standardised features both have; NaN when they share none) and ``weight`` (exp(-d/scale),
    normalised to sum 1; equal weights when no model shares a feature)."""
    shared = [c for c in profiles.columns if c in profile.index and pd.notna(profile[c])]
    spread = profiles[shared].std(ddof=0)
    shared = [c for c in shared if spread[c] > 0 and profiles[c].notna().sum() >= 2]
    z = (profiles[shared] - profiles[shared].mean()) / spread[shared]
    mine = (profile[shared].astype(float) - profiles[shared].mean()) / spread[shared]
    distance = np.sqrt(((z - mine) ** 2).mean(axis=1, skipna=True)) if shared else np.nan
    frame = pd.DataFrame({"distance": distance}, index=profiles.index).astype(float)
    weight = np.exp(-frame["distance"] / scale).fillna(0.0)
    frame["weight"] = weight / weight.sum() if weight.sum() > 0 else 1.0 / len(frame)
    return frame.rename_axis("base_model_name")


# --- prediction and its leave-one-model-out error --------------------------------------------------


def weighted_prediction(gains: pd.DataFrame, weights: pd.Series) -> pd.DataFrame:
    """Per dataset: ``predicted`` (weighted mean of the models' gains) and ``baseline`` (plain mean)."""
    rows = gains.assign(w=gains["base_model_name"].map(weights).fillna(0.0).astype(float))
    rows["wg"] = rows["w"] * rows["gain"]
    grouped = rows.groupby("dataset", observed=True)
    weighted = grouped["wg"].sum() / grouped["w"].sum().replace(0.0, np.nan)
    baseline = grouped["gain"].mean()
    return pd.DataFrame({"predicted": weighted.fillna(baseline), "baseline": baseline})


def leave_one_model_out(
    gains: pd.DataFrame, profiles: pd.DataFrame, scale: float = SIMILARITY_SCALE
) -> pd.DataFrame:
    """Each base model with gains and a profile predicted from the other models alone:
    ``base_model_name``, ``dataset``, ``gain``, ``predicted``, ``baseline``."""
    frames = []
    for name in sorted(set(gains["base_model_name"]) & set(profiles.index)):
        others = gains[gains["base_model_name"] != name]
        if others.empty:
            continue
        weights = similarity(profiles.drop(index=name), profiles.loc[name], scale)["weight"]
        predicted = weighted_prediction(others, weights)
        own = gains[gains["base_model_name"] == name].set_index("dataset")["gain"]
        frames.append(predicted.join(own, how="inner").reset_index().assign(base_model_name=name))
    columns = ["base_model_name", "dataset", "gain", "predicted", "baseline"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def spearman(x: pd.Series, y: pd.Series) -> float:
    """Rank correlation; NaN when either side is constant or fewer than 3 pairs."""
    if len(x) < 3 or x.nunique() < 2 or y.nunique() < 2:
        return math.nan
    return float(x.rank().corr(y.rank()))


@dataclass(frozen=True)
class Reliability:
    n_models: int  # held-out base models
    n_predictions: int  # (model, dataset) pairs
    mae: float  # mean absolute error of the recommendation
    baseline_mae: float  # ... of the mean over the other models
    spearman: float  # mean over held-out models of the rank agreement with their measured gains
    baseline_spearman: float
    top3: float  # share of held-out models whose measured best dataset is in the top 3 recommended
    baseline_top3: float

    def sentence(self, unit: str) -> str:
        if self.n_models < 2:
            return "Not enough base models with results to measure how reliable the prediction is."
        if math.isclose(self.mae, self.baseline_mae, abs_tol=1e-9):
            verdict = "equals (too few models to weight)"
        else:
            verdict = "beats" if self.mae < self.baseline_mae else "does NOT beat"
        return (
            f"Leave-one-model-out ({self.n_models} base models, {self.n_predictions} predictions): the "
            f"recommendation {verdict} the mean-gain baseline, mean absolute error {self.mae:.2f} vs "
            f"{self.baseline_mae:.2f} {unit}; rank agreement with the measured gains (Spearman) "
            f"{self.spearman:.2f} vs {self.baseline_spearman:.2f}; the measured best dataset is in the "
            f"top 3 for {self.top3:.0%} of models (baseline {self.baseline_top3:.0%})."
        )


def _top3(rows: pd.DataFrame, column: str) -> bool:
    best = rows["gain"].max()
    return bool((rows.nlargest(3, column)["gain"] >= best).any())


def reliability(lomo: pd.DataFrame) -> Reliability:
    per_model = [
        (spearman(r["predicted"], r["gain"]), spearman(r["baseline"], r["gain"]), _top3(r, "predicted"))
        + (_top3(r, "baseline"),)
        for _, r in lomo.groupby("base_model_name")
    ]
    table = pd.DataFrame(per_model, columns=["rho", "base_rho", "top3", "base_top3"], dtype=float)
    return Reliability(
        n_models=int(lomo["base_model_name"].nunique()),
        n_predictions=len(lomo),
        mae=float((lomo["predicted"] - lomo["gain"]).abs().mean()),
        baseline_mae=float((lomo["baseline"] - lomo["gain"]).abs().mean()),
        spearman=float(table["rho"].mean()),
        baseline_spearman=float(table["base_rho"].mean()),
        top3=float(table["top3"].mean()),
        baseline_top3=float(table["base_top3"].mean()),
    )


# --- the recommendation ----------------------------------------------------------------------------


@dataclass
class Recommendation:
    model: str
    method: str
    target: Target
    known: bool  # the model's own gains are in the results (shown as evidence, left out of the prediction)
    ranking: pd.DataFrame  # rank, dataset, predicted, low, high, measured, mean_over_models
    similar: pd.DataFrame  # base_model_name, distance, weight: the most similar models first
    evidence: pd.DataFrame  # dataset x model: measured gains of this model and of the similar models
    reliability: Reliability
    coverage: float
    notes: list[str] = field(default_factory=list)

    def headline(self) -> str:
        """What was asked, in one sentence."""
        what = f"{self.target.kind} {self.target.name!r} ({', '.join(self.target.tasks)})"
        origin = (
            "its own measured gains are shown, not used: the prediction comes from the other models"
            if self.known
            else "a base model without results: predicted from the results' base models"
        )
        return (
            f"{self.model}, {self.method} fine-tuning, target {what}; gains in {self.target.unit}; {origin}."
        )

    def summary(self) -> str:
        return f"{self.headline()} {self.reliability.sentence(self.target.unit)}"


def recommend(
    synergy: pd.DataFrame,
    profiles: pd.DataFrame,
    model: str,
    target: str,
    method: str = "full",
    profile: pd.Series | None = None,
    coverage: float = 0.9,
    top_similar: int = 3,
    scale: float = SIMILARITY_SCALE,
) -> Recommendation:
    """Rank the SFT datasets for ``model`` (a base model of ``synergy``/``profiles``, or a new one
    described by ``profile``, see ``new_profile``) and ``target`` (see ``resolve_target``)."""
    rows = synergy[synergy["method"].astype(str) == method]
    if rows.empty:
        methods = sorted(synergy["method"].dropna().astype(str).unique())
        raise RecommendError(f"no {method!r} results; methods with results: {', '.join(methods) or 'none'}")
    resolved = resolve_target(target, rows["task"])
    gains = target_gains(rows, resolved)
    profile, known, notes = _target_profile(model, profiles, profile, gains)
    others = profiles.drop(index=model, errors="ignore")
    others = others[others.index.isin(gains["base_model_name"])]
    if others.empty:
        raise RecommendError(f"no other base model has {method} results on {target!r} to learn from")
    weights = similarity(others, profile, scale)
    if weights["distance"].isna().all():
        notes.append(
            "no profile feature tells the results' models apart (too few models share one, or they are "
            "equal there): every model counts equally"
        )
    train = gains[gains["base_model_name"] != model]
    lomo = leave_one_model_out(gains, profiles[profiles.index.isin(gains["base_model_name"])], scale)
    ranking = _ranking(weighted_prediction(train, weights["weight"]), lomo, coverage)
    measured = gains[gains["base_model_name"] == model].set_index("dataset")["gain"]
    ranking.insert(5, "measured", ranking["dataset"].map(measured).astype(float))
    similar = weights.sort_values("weight", ascending=False).head(top_similar).reset_index()
    pivot = train.pivot(index="dataset", columns="base_model_name", values="gain")
    evidence = pd.concat([measured.rename(model), pivot[similar["base_model_name"].tolist()]], axis=1)
    evidence = evidence.reindex(ranking["dataset"]).dropna(axis=1, how="all").reset_index()
    measured_error = reliability(lomo)
    if measured_error.mae > measured_error.baseline_mae:
        notes.append("on these results the similarity weighting is less accurate than the plain mean")
    return Recommendation(
        model, method, resolved, known, ranking, similar, evidence, measured_error, coverage, notes
    )


def _target_profile(
    model: str, profiles: pd.DataFrame, profile: pd.Series | None, gains: pd.DataFrame
) -> tuple[pd.Series, bool, list[str]]:
    notes: list[str] = []
    known = model in set(gains["base_model_name"])
    if profile is not None and len(profile):
        check_profile(profile, profiles)
        if model in profiles.index:
            notes.append(f"{model} is in the results: the profile given replaces its published one")
        return profile, known, notes
    if model in profiles.index:
        return profiles.loc[model], known, notes
    names = sorted(profiles.index)
    close = difflib.get_close_matches(model, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise RecommendError(
        f"unknown base model {model!r}{hint}: pick one of {', '.join(names)}, or describe a new model "
        "by its base scores per task and/or its perplexity on the SFT datasets"
    )


def _ranking(predicted: pd.DataFrame, lomo: pd.DataFrame, coverage: float) -> pd.DataFrame:
    """Datasets by predicted gain, with the interval of the leave-one-model-out residuals."""
    residual = (lomo["gain"] - lomo["predicted"]).astype(float)
    tail = (1 - coverage) / 2
    low, high = (residual.quantile([tail, 1 - tail]).tolist()) if len(residual) else (math.nan, math.nan)
    table = predicted.rename(columns={"baseline": "mean_over_models"}).reset_index()
    table = table.sort_values(["predicted", "dataset"], ascending=[False, True]).reset_index(drop=True)
    table.insert(0, "rank", range(1, len(table) + 1))
    table.insert(3, "low", table["predicted"] + low)
    table.insert(4, "high", table["predicted"] + high)
    return table[["rank", "dataset", "predicted", "low", "high", "mean_over_models"]]


_PAIR = re.compile(r"^\s*([^=:\s][^=:]*?)\s*[=:]\s*([^\s]+)\s*$")


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def parse_values(text: str) -> dict[str, float]:
    """``name=value`` (or ``name: value``) pairs separated by commas or new lines, e.g. what a person
    types into the Space: ``lima=3.2, alpaca_cleaned=4.1``."""
    values: dict[str, float] = {}
    for part in filter(str.strip, re.split(r"[,\n]", text or "")):
        match = _PAIR.match(part)
        number = _number(match.group(2)) if match else math.nan
        if match is None or not math.isfinite(number):
            raise RecommendError(f"cannot read {part.strip()!r}: write name=number pairs, e.g. lima=3.2")
        values[match.group(1)] = number
    return values
