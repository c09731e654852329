"""``python -m analysis predict``: the expected gain per benchmark of fine-tuning a base model on a
dataset, before training, from the data's perplexity (and mean length) under that model, with a
regression fitted on existing results (scores + perplexity tables) and a leave-one-dataset-out interval."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.cli_report import add_config_arguments, config_from_args, load_scores
from analysis.common import MissingInputError
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
from common.template import render_prompt, render_sample
from evaluation.perplexity import compute_perplexity


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base-model",
        required=True,
        help="base model: a local from_pretrained folder or a Hub id (also its name in the scores)",
    )
    parser.add_argument(
        "--base-model-name", help="its name in the scores table (default: matched from --base-model)"
    )
    parser.add_argument(
        "--data",
        required=True,
        type=Path,
        help="training data: a prepared parquet (id, dataset, prompt, text) or a JSONL of "
        "{instruction, response}",
    )
    parser.add_argument(
        "--scores", required=True, type=Path, help="existing results (scores.parquet or released CSV)"
    )
    parser.add_argument(
        "--perplexity",
        required=True,
        type=Path,
        help="perplexity.parquet of the existing results' (base model, dataset) pairs",
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-samples", type=int, default=1000, help="score at most this many samples")
    parser.add_argument("--json", action="store_true", help="print the table as JSON records")
    add_config_arguments(parser)


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


def fitted_model(args: argparse.Namespace) -> GainModel:
    config = config_from_args(args)
    scores, _ = load_scores(args.scores)
    gains = compute_gains(scores)
    condition = resolve_main_condition(gains, config)
    synergy = synergy_table(gains, condition)
    ppl = perplexity_features(pd.read_parquet(args.perplexity), config.perplexity_scope, condition.data_size)
    values = predictor_values(synergy[synergy["method"] == config.predictor_method], ppl)
    model = fit_gain_model(values, MODEL_FEATURES)
    predictions = lodo_predictions(values, MODEL_FEATURES)
    return with_intervals(model, predictions, config.interval) if not predictions.empty else model


def new_data_features(args: argparse.Namespace, name: str, scope: str) -> dict[str, float]:

    with tempfile.TemporaryDirectory() as tmp:
        prepared = prepared_from(args.data, args.max_samples, Path(tmp))
        _, aggregated = compute_perplexity(
            args.base_model,
            [prepared],
            batch_size=args.batch_size,
            base_model=args.base_model,
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


def main(args: argparse.Namespace) -> int:
    try:
        model = fitted_model(args)
        name = resolve_name(args.base_model, args.base_model_name, load_scores(args.scores)[0])
        features = new_data_features(args, name, config_from_args(args).perplexity_scope)
    except MissingInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    table = prediction_table(model, name, features)
    known = name in model.feature_means.index
    print(
        f"base model {name} ({'fitted' if known else 'NOT in the fitted results: mean over models'}); "
        f"data {args.data}: perplexity {features['perplexity']:.3f}, {features['mean_tokens']:.1f} tokens/sample"
    )
    coverage = config_from_args(args).interval
    print(
        table.to_json(orient="records")
        if args.json
        else table.rename(
            columns={"low": f"low ({coverage:.0%})", "high": f"high ({coverage:.0%})"}
        ).to_string(index=False, float_format=lambda v: f"{v:+.2f}")
    )
    return 0
