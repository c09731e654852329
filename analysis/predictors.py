"""Predictors of gains: perplexity of the training data under the base model, surface similarity
between training data and benchmark, mean length; their within-model rank correlation with gains; and
a small regression that predicts the gain of a (base model, dataset) pair before training."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from analysis.common import MissingInputError, correlation, is_percent_task, sign_consistency
from analysis.config import DEFAULT_CONFIG, AnalysisConfig
from analysis.similarity import embedding_cosine, ngram_overlap
from common.catalog import score_range

PREDICTORS = ("log_perplexity", "ngram_overlap", "embedding_cosine", "mean_tokens")
# Predictors the predict command can compute for a new dataset without benchmark texts.
MODEL_FEATURES = ("log_perplexity", "mean_tokens")


def benchmark_of(task: str) -> str:
    """``gsm8k-4shot`` -> ``gsm8k`` (task labels are ``<benchmark>-<shots or metric>``)."""
    return task.rsplit("-", 1)[0]


def perplexity_features(
    perplexity: pd.DataFrame, scope: str = "response", data_size: int | None = None
) -> pd.DataFrame:
    """Per (base model, dataset): ``perplexity``, ``log_perplexity``, ``mean_tokens`` (tokens per sample
    under the base model's tokenizer). Prefers rows of ``data_size`` when a dataset has several sizes."""
    needed = {"dataset", "perplexity", "scope"}
    if missing := needed - set(perplexity.columns):
        raise MissingInputError(
            f"perplexity table lacks columns {sorted(missing)}; expected the "
            "evaluation stage's perplexity.parquet"
        )
    rows = perplexity[perplexity["scope"] == scope].copy()
    if rows.empty:
        raise MissingInputError(
            f"perplexity table has no rows with scope == {scope!r} "
            f"(scopes present: {sorted(perplexity['scope'].dropna().unique())})"
        )
    name = rows["base_model_name"] if "base_model_name" in rows else pd.Series(pd.NA, index=rows.index)
    rows["base_model_name"] = name.fillna(rows.get("base_model", pd.Series(pd.NA, index=rows.index)))
    if "data_size" in rows and data_size is not None:
        rows = rows.assign(_pref=(rows["data_size"] != data_size).astype(int)).sort_values("_pref")
    rows = rows.drop_duplicates(["base_model_name", "dataset"])
    rows["log_perplexity"] = np.log(rows["perplexity"].astype(float))
    if {"n_tokens", "n_samples"} <= set(rows.columns):
        rows["mean_tokens"] = rows["n_tokens"].astype(float) / rows["n_samples"].astype(float)
    else:
        rows["mean_tokens"] = np.nan
    return rows[["base_model_name", "dataset", "perplexity", "log_perplexity", "mean_tokens"]].reset_index(
        drop=True
    )


def load_training_texts(data_dir: Path) -> dict[str, list[str]]:
    """dataset name -> sample texts, from the prepared parquet files (``<dataset>__<size>__<hash>``).
    The smallest file of each dataset is used: that is the main-condition subset."""
    files = sorted(Path(data_dir).glob("*.parquet"))
    if not files:
        raise MissingInputError(
            f"no prepared training data (*.parquet) in {data_dir}; run "
            "`python -m training prepare` or pass --data-dir"
        )
    by_dataset: dict[str, pd.DataFrame] = {}
    for path in files:
        frame = pd.read_parquet(path, columns=["dataset", "text"])
        for name, rows in frame.groupby("dataset"):
            if name not in by_dataset or len(rows) < len(by_dataset[name]):
                by_dataset[str(name)] = rows
    return {name: rows["text"].astype(str).tolist() for name, rows in by_dataset.items()}


def word_lengths(texts: dict[str, list[str]]) -> pd.DataFrame:
    """Mean length in whitespace words, the fallback when no perplexity table gives token counts."""
    return pd.DataFrame(
        [
            {"dataset": d, "mean_words": float(np.mean([len(t.split()) for t in ts]))}
            for d, ts in texts.items()
        ]
    )


def _subsample(texts: list[str], k: int) -> list[str]:
    """A deterministic, evenly spaced subsample (stable across runs, so the embedding cache hits)."""
    if len(texts) <= k:
        return texts
    return [texts[i] for i in np.linspace(0, len(texts) - 1, k).astype(int)]


def similarity_features(
    train: dict[str, list[str]],
    benchmarks: dict[str, list[str]],
    config: AnalysisConfig = DEFAULT_CONFIG,
    cache_dir: Path | None = None,
    embeddings: bool = True,
) -> pd.DataFrame:
    """Per (dataset, benchmark): ``ngram_overlap`` and ``embedding_cosine`` (NaN if ``embeddings`` off)."""

    records = []
    pairs = [(d, b) for d in sorted(train) for b in sorted(benchmarks)]
    for dataset, benchmark in tqdm(pairs, desc="similarity", unit="pair", disable=len(pairs) < 4):
        bench = benchmarks[benchmark]
        cosine = (
            embedding_cosine(
                _subsample(train[dataset], config.max_texts),
                _subsample(bench, config.max_texts),
                cache_dir,
                config.embedding_batch,
            )
            if embeddings
            else math.nan
        )
        records.append(
            {
                "dataset": dataset,
                "benchmark": benchmark,
                "ngram_overlap": ngram_overlap(train[dataset], bench, config.ngram),
                "embedding_cosine": cosine,
            }
        )
    return pd.DataFrame(records, columns=["dataset", "benchmark", "ngram_overlap", "embedding_cosine"])


def predictor_values(
    synergy: pd.DataFrame,
    perplexity: pd.DataFrame | None = None,
    similarity: pd.DataFrame | None = None,
    lengths: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Main-condition gains joined with every available predictor (missing ones are NaN)."""
    values = synergy[["base_model_name", "method", "dataset", "task", "gain"]].copy()
    values["benchmark"] = values["task"].astype(str).map(benchmark_of)
    if perplexity is not None and not perplexity.empty:
        values = values.merge(perplexity, on=["base_model_name", "dataset"], how="left")
    if similarity is not None and not similarity.empty:
        values = values.merge(similarity, on=["dataset", "benchmark"], how="left")
    if lengths is not None and not lengths.empty and "mean_tokens" not in values:
        values = values.merge(lengths.rename(columns={"mean_words": "mean_tokens"}), on="dataset", how="left")
    for column in ("perplexity", *PREDICTORS):
        if column not in values:
            values[column] = np.nan
    return values[["base_model_name", "method", "dataset", "task", "gain", "perplexity", *PREDICTORS]]


def predictor_correlations(values: pd.DataFrame, min_datasets: int = 4) -> pd.DataFrame:
    """Spearman correlation of each predictor with the gain, within each base model across datasets."""
    records = []
    for (model, method, task), rows in values.groupby(["base_model_name", "method", "task"], observed=True):
        for predictor in PREDICTORS:
            rho, _, n = correlation(rows[predictor], rows["gain"], "spearman", min_datasets)
            if not math.isnan(rho):
                records.append(
                    {
                        "base_model_name": model,
                        "method": method,
                        "task": task,
                        "predictor": predictor,
                        "spearman": rho,
                        "n_datasets": n,
                    }
                )
    return pd.DataFrame(
        records, columns=["base_model_name", "method", "task", "predictor", "spearman", "n_datasets"]
    )


def predictor_summary(correlations: pd.DataFrame) -> pd.DataFrame:
    """Across models: mean rank correlation and sign consistency, per task and over all tasks ("all")."""
    records = []
    pooled = correlations.assign(task="all")
    for (method, predictor, task), rows in pd.concat([correlations, pooled]).groupby(
        ["method", "predictor", "task"], observed=True
    ):
        records.append(
            {
                "method": method,
                "predictor": predictor,
                "task": task,
                "mean_spearman": float(rows["spearman"].mean()),
                "mean_abs_spearman": float(rows["spearman"].abs().mean()),
                "sign_consistency": sign_consistency(rows["spearman"]),
                "n_models": int(rows["base_model_name"].nunique()),
            }
        )
    return pd.DataFrame(
        records,
        columns=[
            "method",
            "predictor",
            "task",
            "mean_spearman",
            "mean_abs_spearman",
            "sign_consistency",
            "n_models",
        ],
    )


# --- predicting the gain before training -------------------------------------------------------------


@dataclass
class GainModel:
    """Per task: gain = model mean + beta . (features - the model's mean features), pooled over models."""

    features: tuple[str, ...]
    model_means: pd.DataFrame  # index (base_model_name, task): alpha
    feature_means: pd.DataFrame  # index base_model_name: mean feature values over its datasets
    betas: pd.DataFrame  # index task, columns features
    residual_quantiles: pd.DataFrame | None = None  # index task: lo, hi (leave-one-dataset-out residuals)


def _usable_features(values: pd.DataFrame, features: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f for f in features if f in values and values[f].notna().any())


def fit_gain_model(
    values: pd.DataFrame, features: tuple[str, ...] = MODEL_FEATURES, ridge: float = 1e-3
) -> GainModel:
    features = _usable_features(values, features)
    values = values.dropna(subset=["gain", *features])
    if values.empty:
        raise MissingInputError(
            "no (base model, dataset) pair has both a gain and the predictors "
            f"{list(features)}: pass a perplexity table matching the scores"
        )
    per_pair = values.drop_duplicates(["base_model_name", "dataset"])
    feature_means = per_pair.groupby("base_model_name")[list(features)].mean()
    model_means = values.groupby(["base_model_name", "task"])["gain"].mean().rename("alpha")
    betas = {}
    for task, rows in values.groupby("task"):
        x = rows[list(features)].to_numpy(float) - feature_means.loc[rows["base_model_name"]].to_numpy(float)
        y = (
            rows["gain"].to_numpy(float)
            - model_means.loc[list(zip(rows["base_model_name"], rows["task"], strict=False))].to_numpy()
        )
        scale = x.std(axis=0) + 1e-12
        xs = x / scale
        beta = np.linalg.solve(xs.T @ xs + ridge * len(xs) * np.eye(len(features)), xs.T @ y) / scale
        betas[task] = beta
    return GainModel(
        features,
        model_means.to_frame(),
        feature_means,
        pd.DataFrame.from_dict(betas, orient="index", columns=list(features)),
    )


def predict_gains(
    model: GainModel, base_model_name: str, features: dict[str, float], baseline: bool = False
) -> pd.DataFrame:
    """Expected gain per task for one (base model, new dataset). A base model absent from the fit
    falls back to the mean over fitted models (wider error in practice)."""
    known = base_model_name in model.feature_means.index
    alpha = model.model_means["alpha"]
    centers = model.feature_means.loc[base_model_name] if known else model.feature_means.mean()
    x = np.array([features[f] for f in model.features], dtype=float) - centers.to_numpy(float)
    records = []
    for task, beta in model.betas.iterrows():
        base = alpha.get((base_model_name, task)) if known else None
        base = float(alpha.xs(task, level="task").mean()) if base is None or pd.isna(base) else float(base)
        records.append(
            {"task": task, "predicted_gain": base if baseline else base + float(beta.to_numpy() @ x)}
        )
    return pd.DataFrame(records)


PREDICTION_COLUMNS = ["scheme", "dataset", "base_model_name", "task", "gain", "predicted", "baseline"]


def gain_bounds(gains: pd.DataFrame) -> pd.DataFrame:
    """Per (base model, task): the lowest and highest gain the metric allows (``low``, ``high``),
    i.e. the score range minus the base model's score."""
    base = gains.drop_duplicates(["base_model_name", "task"])[
        ["base_model_name", "task", "benchmark", "base_value"]
    ]
    ranges = base["benchmark"].map(score_range)
    return pd.DataFrame(
        {
            "base_model_name": base["base_model_name"].astype(str).to_numpy(),
            "task": base["task"].astype(str).to_numpy(),
            "low": [lo for lo, _ in ranges] - base["base_value"].to_numpy(float),
            "high": [hi for _, hi in ranges] - base["base_value"].to_numpy(float),
        }
    )


def unknown_bounds(task: str) -> tuple[float, float]:
    """Gain bounds of a task when the base model's score is not known: +- the metric's span."""
    low, high = score_range(benchmark_of(task))
    return low - high, high - low


def clip_predictions(frame: pd.DataFrame, bounds: pd.DataFrame | None, columns: list[str]) -> pd.DataFrame:
    """Clip ``columns`` of a per (base model, task) frame to the achievable gains; rows without known
    bounds are clipped to the metric's span."""
    frame = frame.copy()
    if bounds is not None and not bounds.empty:
        merged = (
            frame[["base_model_name", "task"]]
            .astype(str)
            .merge(bounds, on=["base_model_name", "task"], how="left")
        )
        low, high = merged["low"].to_numpy(float), merged["high"].to_numpy(float)
    else:
        low = high = np.full(len(frame), np.nan)
    spans = [unknown_bounds(str(t)) for t in frame["task"]]
    low = np.where(np.isnan(low), [lo for lo, _ in spans], low)
    high = np.where(np.isnan(high), [hi for _, hi in spans], high)
    for column in columns:
        frame[column] = np.clip(frame[column].to_numpy(float), low, high)
    return frame


def _records(
    scheme: str, dataset: str, name: str, rows: pd.DataFrame, pred: pd.Series, base: pd.Series
) -> list[dict]:
    return [
        {
            "scheme": scheme,
            "dataset": dataset,
            "base_model_name": name,
            "task": task,
            "gain": gain,
            "predicted": pred[task],
            "baseline": base[task],
        }
        for task, gain in zip(rows["task"], rows["gain"], strict=False)
        if task in pred.index and task in base.index
    ]


def lodo_predictions(
    values: pd.DataFrame, features: tuple[str, ...] = MODEL_FEATURES, bounds: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Leave one dataset out (a new dataset for a known base model): fit without it, predict it for
    every base model; the baseline predicts the model's mean gain over the other datasets. Predictions
    are clipped to the gains the metric allows (``bounds`` of ``gain_bounds``)."""
    features = _usable_features(values, features)
    values = values.dropna(subset=["gain", *features])
    records = []
    for dataset in sorted(values["dataset"].unique()):
        train, test = values[values["dataset"] != dataset], values[values["dataset"] == dataset]
        if train["dataset"].nunique() < 2:
            continue
        model = fit_gain_model(train, features)
        for name, rows in test.groupby("base_model_name"):
            if name not in model.feature_means.index:
                continue
            feats = rows.iloc[0][list(features)].to_dict()
            pred = predict_gains(model, name, feats).set_index("task")["predicted_gain"]
            base = predict_gains(model, name, feats, baseline=True).set_index("task")["predicted_gain"]
            records += _records("leave-one-dataset-out", dataset, name, rows, pred, base)
    frame = pd.DataFrame(records, columns=PREDICTION_COLUMNS)
    return clip_predictions(frame, bounds, ["predicted", "baseline"])


def lomo_predictions(
    values: pd.DataFrame, features: tuple[str, ...] = MODEL_FEATURES, bounds: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Leave one base model out (a new base model on known datasets): fit without it and predict its
    gains from its perplexities alone; the baseline predicts each dataset's mean gain over the other
    models (what one would guess without the predictor). Clipped like ``lodo_predictions``."""
    features = _usable_features(values, features)
    values = values.dropna(subset=["gain", *features])
    records = []
    for name in sorted(values["base_model_name"].unique()):
        train, test = values[values["base_model_name"] != name], values[values["base_model_name"] == name]
        if train["base_model_name"].nunique() < 2:
            continue
        model = fit_gain_model(train, features)
        dataset_means = train.groupby(["dataset", "task"])["gain"].mean()
        for dataset, rows in test.groupby("dataset"):
            feats = rows.iloc[0][list(features)].to_dict()
            pred = predict_gains(model, name, feats).set_index("task")["predicted_gain"]
            if dataset not in dataset_means.index.get_level_values("dataset"):
                continue
            records += _records("leave-one-model-out", dataset, name, rows, pred, dataset_means.xs(dataset))
    frame = pd.DataFrame(records, columns=PREDICTION_COLUMNS)
    return clip_predictions(frame, bounds, ["predicted", "baseline"])


def prediction_errors(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per scheme and task (and ``all``): mean absolute error of the predictor and of its baseline, and
    ``worse_than_baseline``. ``all`` pools tasks in percent (points) only, MT-Bench (1-10) apart."""
    frame = predictions.assign(
        model_err=(predictions["predicted"] - predictions["gain"]).abs(),
        base_err=(predictions["baseline"] - predictions["gain"]).abs(),
    )
    pooled = frame[frame["task"].map(is_percent_task)].assign(task="all")
    table = (
        pd.concat([frame, pooled])
        .groupby(["scheme", "task"])
        .agg(n=("gain", "size"), model_mae=("model_err", "mean"), baseline_mae=("base_err", "mean"))
        .reset_index()
    )
    table["improvement"] = table["baseline_mae"] - table["model_mae"]
    table["worse_than_baseline"] = table["model_mae"] > table["baseline_mae"]
    return table


def verdict(errors: pd.DataFrame, scheme: str) -> str:
    """A plain sentence on whether the predictor beats its baseline under one evaluation scheme."""
    rows = errors[(errors["scheme"] == scheme) & (errors["task"] == "all")]
    if rows.empty:
        return f"{scheme}: not enough results to evaluate the predictor."
    row = rows.iloc[0]
    numbers = (
        f"mean absolute error {row['model_mae']:.2f} vs {row['baseline_mae']:.2f} points over "
        f"{int(row['n'])} predictions of tasks in percent"
    )
    if row["worse_than_baseline"]:
        return (
            f"{scheme}: the perplexity predictor is WORSE than its baseline ({numbers}); "
            "do not use its predictions."
        )
    return f"{scheme}: the perplexity predictor beats its baseline ({numbers})."


def with_intervals(model: GainModel, predictions: pd.DataFrame, coverage: float = 0.9) -> GainModel:
    """Attach per-task residual quantiles from leave-one-dataset-out predictions (honest intervals)."""
    residual = predictions.assign(r=predictions["gain"] - predictions["predicted"])
    lo, hi = (1 - coverage) / 2, 1 - (1 - coverage) / 2
    model.residual_quantiles = (
        residual.groupby("task")["r"].quantile([lo, hi]).unstack().set_axis(["lo", "hi"], axis=1)
    )
    return model
