"""``python -m analysis recommend``: which SFT dataset to fine-tune a base model on for a target benchmark
or benchmark family. Ranks the datasets by predicted gain (a similarity-weighted mean of the other base
models' measured main-condition gains) with an interval, shows the evidence (this model's measured gains,
and those of the most similar models) and how reliable the prediction is: its leave-one-model-out error
against the mean-gain baseline (``common/recommend.py``, the same computation as the Space's tab).

The model: one of the results' base models, or a new one described by its perplexity on the SFT
datasets (``--new-perplexity lima=3.2 ...``, as ``python -m evaluation perplexity`` measures it) and/or
its own base scores (``--new-score gsm8k-4shot=41.2 ...``). The target: a leaderboard task
(``gsm8k-4shot``), a benchmark (``gsm8k``) or a family (``math``; ``family:math`` where a name is both).

Examples:
  python -m analysis recommend --model Meta-Llama-3-8B --target family:math
  python -m analysis recommend --scores ../shared/data/massive-sft/evaluation_result.csv \\
      --model my-7b --new-score mmlu-5shot=55 --new-score gsm8k-4shot=40 --target code
  python -m analysis recommend --root outputs/demo --model my-model --new-perplexity demo_facts=12.5 \\
      --new-perplexity demo_arithmetic=30 --new-perplexity demo_strings=20 --target demo
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.cli_report import load_scores, read_parquet
from analysis.config import AnalysisConfig
from analysis.gains import compute_gains
from analysis.predictors import perplexity_features
from analysis.synergy import MainCondition, resolve_main_condition, synergy_table
from common.config import setting
from common.layout import OutputRoot, default_root
from common.recommend import (
    Recommendation,
    base_scores_of,
    model_profiles,
    new_profile,
    parse_values,
    recommend,
)
from common.schema import to_wide


@dataclass(frozen=True)
class Options:
    model: str = setting(
        None, "base model: a base model of the results, or a new model's name (with --new-*)", required=True
    )
    target: str = setting(
        None,
        "target: a task (gsm8k-4shot), a benchmark (gsm8k) or a family (math, family:math)",
        required=True,
    )
    root: Path = setting(default_root("study"), "output root holding scores.parquet (+ perplexity.parquet)")
    scores: Path | None = setting(None, "results: scores.parquet or the released CSV (default: ROOT's)")
    perplexity: Path | None = setting(
        None, "perplexity.parquet of the results' base models (default: ROOT's, when present)"
    )
    method: str = setting("full", "fine-tuning method whose gains are ranked (full or lora)")
    new_perplexity: list[str] = setting(
        default_factory=list,
        help="a new model's perplexity on an SFT dataset, DATASET=VALUE (repeatable)",
        repeat=True,
        metavar="DATASET=X",
    )
    new_score: list[str] = setting(
        default_factory=list,
        help="a new model's own base score on a task, TASK=VALUE (repeatable)",
        repeat=True,
        metavar="TASK=X",
    )
    similar: int = setting(3, "how many of the most similar base models to show as evidence")
    json: bool = setting(False, "print the recommendation as one JSON object")
    analysis: AnalysisConfig = setting(default_factory=AnalysisConfig, inline=True)


def inputs(options: Options) -> tuple[pd.DataFrame, pd.DataFrame, MainCondition]:
    """(synergy table, model profiles, main condition) of the results."""
    root = OutputRoot(options.root)
    scores, _ = load_scores(options.scores or root.scores)
    gains = compute_gains(scores)
    condition = resolve_main_condition(gains, options.analysis)
    synergy = synergy_table(gains, condition)
    perplexity_path = options.perplexity or (root.perplexity if root.perplexity.is_file() else None)
    perplexity = None
    if perplexity_path is not None:
        table = read_parquet(perplexity_path, "perplexity")
        perplexity = perplexity_features(table, options.analysis.perplexity_scope, condition.data_size)
    return synergy, model_profiles(base_scores_of(to_wide(scores)), perplexity), condition


def run(options: Options) -> Recommendation:
    synergy, profiles, _ = inputs(options)
    given = new_profile(
        parse_values(",".join(options.new_score)), parse_values(",".join(options.new_perplexity))
    )
    return recommend(
        synergy,
        profiles,
        options.model,
        options.target,
        method=options.method,
        profile=given,
        coverage=options.analysis.interval,
        top_similar=options.similar,
    )


def as_json(result: Recommendation) -> str:
    return json.dumps(
        {
            "summary": result.summary(),
            "notes": result.notes,
            "target": {
                "kind": result.target.kind,
                "tasks": list(result.target.tasks),
                "unit": result.target.unit,
            },
            "coverage": result.coverage,
            "reliability": result.reliability.__dict__,
            "ranking": result.ranking.to_dict(orient="records"),
            "similar": result.similar.to_dict(orient="records"),
            "evidence": result.evidence.to_dict(orient="records"),
        },
        default=float,
    )


def main(options: Options) -> int:
    result = run(options)
    if options.json:
        print(as_json(result))
        return 0
    print(result.summary())
    for note in result.notes:
        print(f"note: {note}")
    coverage = f"{result.coverage:.0%}"
    ranking = result.ranking.rename(columns={"low": f"low ({coverage})", "high": f"high ({coverage})"})
    print(f"\nSFT datasets by predicted gain ({result.target.unit}):")
    print(ranking.to_string(index=False, float_format=lambda v: f"{v:+.2f}", na_rep="-"))
    print("\nMost similar base models (weight in the prediction):")
    print(result.similar.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("\nEvidence: measured gains in the main condition")
    print(result.evidence.to_string(index=False, float_format=lambda v: f"{v:+.2f}", na_rep="-"))
    return 0
