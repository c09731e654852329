"""``python -m analysis predict``: the expected gain per benchmark of fine-tuning a base model on a
dataset, before training, from the data's perplexity (and mean length) under that model, with a
regression fitted on existing results (scores + perplexity tables) and a leave-one-dataset-out interval."""

from __future__ import annotations

import json
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
    fit_gain_model,
    lodo_predictions,
    perplexity_features,
    predict_gains,
    predictor_values,
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


def fitted_model(options: Options) -> GainModel:
    config = options.analysis
    scores, _ = load_scores(options.scores)
    gains = compute_gains(scores)
    condition = resolve_main_condition(gains, config)
    synergy = synergy_table(gains, condition)
    perplexity = read_parquet(options.perplexity, "perplexity")
    ppl = perplexity_features(perplexity, config.perplexity_scope, condition.data_size)
    values = predictor_values(synergy[synergy["method"] == config.predictor_method], ppl)
    model = fit_gain_model(values, MODEL_FEATURES)
    predictions = lodo_predictions(values, MODEL_FEATURES)
    return with_intervals(model, predictions, config.interval) if not predictions.empty else model


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


def prediction_table(model: GainModel, name: str, features: dict[str, float]) -> pd.DataFrame:
    table = predict_gains(model, name, features)
    quantiles = model.residual_quantiles
    if quantiles is not None:
        table = table.merge(quantiles, left_on="task", right_index=True, how="left")
        table["low"] = table["predicted_gain"] + table["lo"]
        table["high"] = table["predicted_gain"] + table["hi"]
        table = table.drop(columns=["lo", "hi"])
    else:
        table["low"] = table["high"] = np.nan
    return table


def main(options: Options) -> int:
    model = fitted_model(options)
    name = resolve_name(options.base_model, options.base_model_name, load_scores(options.scores)[0])
    features = new_data_features(options, name, options.analysis.perplexity_scope)
    table = prediction_table(model, name, features)
    known = name in model.feature_means.index
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
