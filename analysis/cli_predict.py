"""``python -m analysis predict``: the expected gain per benchmark of fine-tuning a base model on a
dataset, before training, from the data's perplexity (and mean length) under that model, with a
regression fitted on existing results (scores + perplexity tables) and a leave-one-dataset-out interval."""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.cli_report import load_scores, read_parquet
from analysis.common import MissingInputError
from analysis.config import AnalysisConfig
from analysis.gains import compute_gains
from analysis.predictors import (
    MODEL_FEATURES,
    GainModel,
    clip_predictions,
    fit_gain_model,
    gain_bounds,
    lodo_predictions,
    lomo_predictions,
    perplexity_features,
    predict_gains,
    prediction_errors,
    predictor_values,
    verdict,
    with_intervals,
)
from analysis.synergy import resolve_main_condition, synergy_table
from common.config import setting
from common.template import render_prompt, render_sample
from evaluation.perplexity import compute_perplexity


@dataclass(frozen=True)
class Options:
    base_model: str = setting(
        None,
        "base model: a local from_pretrained folder or a Hub id (also its name in the scores)",
        required=True,
    )
    base_model_name: str | None = setting(
        None, "its name in the scores table (default: matched from --base-model)"
    )
    data: Path = setting(
        None,
        "training data: a prepared parquet (id, dataset, prompt, text) or a JSONL of {instruction, response}",
        required=True,
    )
    scores: Path = setting(None, "existing results (scores.parquet or released CSV)", required=True)
    perplexity: Path = setting(
        None, "perplexity.parquet of the existing results' (base model, dataset) pairs", required=True
    )
    batch_size: int = setting(8, "samples per forward pass")
    max_samples: int = setting(1000, "score at most this many samples")
    json: bool = setting(False, "print the table as JSON records")
    analysis: AnalysisConfig = setting(default_factory=AnalysisConfig, inline=True)


def prepared_from(data: Path, max_samples: int, workdir: Path) -> Path:
    """The data as a prepared parquet (what compute_perplexity reads); JSONL is rendered with the paper
    template, like `python -m training prepare` does."""
    if data.suffix == ".parquet":
        frame = pd.read_parquet(data)
    elif data.suffix in (".jsonl", ".json"):
        records = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not records or not {"instruction", "response"} <= set(records[0]):
            raise MissingInputError(f"{data}: each JSONL line needs 'instruction' and 'response' fields")
        frame = pd.DataFrame(
            {
                "id": [str(i) for i in range(len(records))],
                "dataset": data.stem,
                "prompt": [render_prompt(r["instruction"]) for r in records],
                "text": [render_sample(r["instruction"], r["response"]) for r in records],
            }
        )
    else:
        raise MissingInputError(
            f"{data}: expected a .parquet (prepared) or .jsonl (instruction/response) file"
        )
    frame = frame.head(max_samples)
    path = workdir / f"{frame['dataset'].iloc[0]}__{len(frame)}__new.parquet"
    frame.to_parquet(path, index=False)
    return path


def resolve_name(base_model: str, explicit: str | None, scores: pd.DataFrame) -> str:
    if explicit:
        return explicit
    for column in ("base_model_name", "base_model"):
        hit = scores.loc[scores[column] == base_model, "base_model_name"].dropna()
        if not hit.empty:
            return str(hit.iloc[0])
    return Path(base_model).name


@dataclass
class Fitted:
    model: GainModel
    errors: pd.DataFrame  # prediction_errors of both evaluation schemes
    bounds: pd.DataFrame  # gain_bounds of the existing results


def fitted_model(options: Options) -> Fitted:
    """The gain model fitted on the existing results, its leave-one-dataset-out and leave-one-model-out
    errors, and the achievable gains per (base model, task)."""
    config = options.analysis
    scores, _ = load_scores(options.scores)
    gains = compute_gains(scores)
    condition = resolve_main_condition(gains, config)
    synergy = synergy_table(gains, condition)
    perplexity = read_parquet(options.perplexity, "perplexity")
    ppl = perplexity_features(perplexity, config.perplexity_scope, condition.data_size)
    values = predictor_values(synergy[synergy["method"] == config.predictor_method], ppl)
    model = fit_gain_model(values, MODEL_FEATURES)
    bounds = gain_bounds(gains)
    lodo = lodo_predictions(values, MODEL_FEATURES, bounds)
    lomo = lomo_predictions(values, MODEL_FEATURES, bounds)
    if not lodo.empty:
        model = with_intervals(model, lodo, config.interval)
    return Fitted(model, prediction_errors(pd.concat([lodo, lomo], ignore_index=True)), bounds)


def new_data_features(options: Options, name: str, scope: str) -> dict[str, float]:

    with tempfile.TemporaryDirectory() as tmp:
        prepared = prepared_from(options.data, options.max_samples, Path(tmp))
        _, aggregated = compute_perplexity(
            options.base_model,
            [prepared],
            batch_size=options.batch_size,
            base_model=options.base_model,
            base_model_name=name,
        )
    features = perplexity_features(aggregated, scope).iloc[0]
    return {
        "log_perplexity": float(features["log_perplexity"]),
        "mean_tokens": float(features["mean_tokens"]),
        "perplexity": float(features["perplexity"]),
    }


def prediction_table(
    model: GainModel, name: str, features: dict[str, float], bounds: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Predicted gain per task with its interval, all clipped to the gains the metric allows for this
    base model (its base score from the results; the metric's span when it has none)."""
    table = predict_gains(model, name, features)
    quantiles = model.residual_quantiles
    if quantiles is not None:
        table = table.merge(quantiles, left_on="task", right_index=True, how="left")
        table["low"] = table["predicted_gain"] + table["lo"]
        table["high"] = table["predicted_gain"] + table["hi"]
        table = table.drop(columns=["lo", "hi"])
    else:
        table["low"] = table["high"] = np.nan
    table.insert(0, "base_model_name", name)
    columns = ["predicted_gain", "low", "high"]
    return clip_predictions(table, bounds, columns).drop(columns="base_model_name")


def main(options: Options) -> int:
    fitted = fitted_model(options)
    name = resolve_name(options.base_model, options.base_model_name, load_scores(options.scores)[0])
    features = new_data_features(options, name, options.analysis.perplexity_scope)
    table = prediction_table(fitted.model, name, features, fitted.bounds)
    known = name in fitted.model.feature_means.index
    # The scheme that matches this prediction: a known base model with new data is leave-one-dataset-
    # out; an unknown base model is leave-one-model-out. Its verdict is said first, plainly.
    relevant = "leave-one-dataset-out" if known else "leave-one-model-out"
    for scheme in sorted(("leave-one-dataset-out", "leave-one-model-out"), key=lambda s: s != relevant):
        line = verdict(fitted.errors, scheme)
        print(f"WARNING: {line}" if "WORSE" in line else line)
        if "WORSE" in line and scheme == relevant:
            print(f"warning: {line}", file=sys.stderr)
    print(
        f"base model {name} ({'fitted' if known else 'NOT in the fitted results: mean over models'}); "
        f"data {options.data}: perplexity {features['perplexity']:.3f}, "
        f"{features['mean_tokens']:.1f} tokens/sample"
    )
    coverage = options.analysis.interval
    print(
        table.to_json(orient="records")
        if options.json
        else table.rename(
            columns={"low": f"low ({coverage:.0%})", "high": f"high ({coverage:.0%})"}
        ).to_string(index=False, float_format=lambda v: f"{v:+.2f}")
    )
    return 0
