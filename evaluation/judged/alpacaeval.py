"""AlpacaEval 2 as its default annotator (``weighted_alpaca_eval_gpt4_turbo``) scores it: the judge sees
the instruction and two outputs in an order switched by a seeded coin per instruction, names the better
one with a single token ``m`` (first) or ``M`` (second), and the preference is the probability mass of
those tokens when the endpoint returns log-probabilities (else the token itself). The win rate and the
length-controlled win rate follow ``alpaca_eval.metrics`` (``length_controlled_v1``).

``alpaca-eval`` itself is not imported: its 0.6.6 release imports ``pkg_resources``, which current
setuptools no longer ships, and it fetches its GLM data from the Hub on every call. The GLM below is a
port of ``alpaca_eval.metrics.glm_winrate`` with scikit-learn (see docs/evaluation-run.md)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

from evaluation.judged.client import ChatRequest

PROMPT_FILE = Path(__file__).resolve().parent / "prompts" / "alpacaeval_judge_prompt.json"
SWITCH_SEED = "alpacaeval-order"
REGULARIZE_TO_BASELINE = 0.2  # length_controlled_v1's weight of the two gamed baselines
N_SPLITS = 5
CS = np.logspace(-4, 4, 10)  # LogisticRegressionCV's default grid of inverse regularization strengths


@dataclass(frozen=True)
class Instruction:
    index: int  # position in the evaluation set: the key of its instruction difficulty
    instruction: str
    reference: str  # the baseline's output (GPT-4 Turbo's for AlpacaEval 2)
    dataset: str = ""


def load_prompt(path: Path = PROMPT_FILE) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def is_switched(instruction: str) -> bool:
    """Whether the model's output is shown first; a coin seeded by the instruction, as alpaca_eval's
    ``RandomSwitchTwoColumnsProcessor`` (same idea, not the same seed)."""
    digest = hashlib.sha256(f"{SWITCH_SEED}{instruction}".encode()).digest()
    return digest[0] % 2 == 1


def judge_request(prompt: dict[str, Any], item: Instruction, answer: str) -> ChatRequest:
    first, second = (answer, item.reference) if is_switched(item.instruction) else (item.reference, answer)
    # str.replace, not str.format: the published template has literal braces
    user = (
        prompt["prompt_template"]
        .replace("{instruction}", item.instruction)
        .replace("{output_1}", first)
        .replace("{output_2}", second)
    )
    messages = ({"role": "system", "content": prompt["system_prompt"]}, {"role": "user", "content": user})
    return ChatRequest(messages=messages, max_tokens=1, temperature=1.0, logprobs=True)


def first_output_probability(text: str, logprobs: list[dict[str, Any]] | None) -> float:
    """P(the first shown output is better): from the tokens ``m``/``M`` among the top log-probabilities
    (alpaca_eval's ``logprob_parser``); without them, 1 or 0 from the answer's text; NaN if neither."""
    if logprobs:
        found = {t.get("token"): float(t.get("logprob", -math.inf)) for t in logprobs}
        if "m" in found or "M" in found:
            first, second = found.get("m", -math.inf), found.get("M", -math.inf)
            return float(np.exp(first - np.logaddexp(first, second)))
    token = text.strip()
    if token in ("m", "M"):
        return 1.0 if token == "m" else 0.0
    return math.nan


def model_preference(instruction: str, text: str, logprobs: list[dict[str, Any]] | None) -> float:
    """P(the model's output beats the reference), in [0, 1]; NaN when the judgment is unusable."""
    first = first_output_probability(text, logprobs)
    return first if is_switched(instruction) else 1.0 - first


def win_rate(preferences: pd.Series) -> tuple[float, float]:
    """Win rate and its standard error, in percent, over the usable judgments."""
    valid = preferences.dropna()
    if valid.empty:
        return math.nan, math.nan
    stderr = float(valid.sem() * 100) if len(valid) > 1 else math.nan
    return float(valid.mean() * 100), stderr


# ---------------------------------------------------------------- the length-controlled GLM


def _features(frame: pd.DataFrame) -> np.ndarray:
    """``np.tanh(std_delta_len) + instruction_difficulty + not_gamed_baseline.astype(float) - 1``."""
    return np.column_stack(
        [
            np.tanh(frame["std_delta_len"].to_numpy(float)),
            frame["instruction_difficulty"].to_numpy(float),
            frame["not_gamed_baseline"].astype(float).to_numpy(),
        ]
    )


def _fit(x: np.ndarray, p: np.ndarray, weight: np.ndarray, c: float):
    """Logistic regression on soft labels: every row twice, as label 1 weighted p and label 0 weighted
    1 - p (alpaca_eval's ``fit_LogisticRegressionCV``), L1, no intercept."""
    model = LogisticRegression(C=c, l1_ratio=1.0, solver="liblinear", fit_intercept=False, random_state=123)
    model.fit(
        np.vstack([x, x]),
        np.concatenate([np.ones(len(x)), np.zeros(len(x))]),
        sample_weight=np.concatenate([p * weight, (1 - p) * weight]),
    )
    return model


def _soft_log_loss(model, x: np.ndarray, p: np.ndarray, weight: np.ndarray) -> float:
    q = np.clip(model.predict_proba(x)[:, 1], 1e-15, 1 - 1e-15)
    return float(-np.mean((p * np.log(q) + (1 - p) * np.log(1 - q)) * weight))


def _best_c(x: np.ndarray, p: np.ndarray, weight: np.ndarray) -> float:
    splits = min(N_SPLITS, len(x))
    if splits < 2:
        return float(CS[-1])
    folds = list(GroupKFold(n_splits=splits).split(x, groups=np.arange(len(x))))
    losses = []
    for c in CS:
        fold_losses = [
            _soft_log_loss(_fit(x[train], p[train], weight[train], c), x[test], p[test], weight[test])
            for train, test in folds
        ]
        losses.append(np.mean(fold_losses))
    return float(CS[int(np.argmin(losses))])


def length_controlled_win_rate(
    judged: pd.DataFrame, gamed: pd.DataFrame, difficulty: pd.Series
) -> tuple[float, float]:
    """``length_controlled_v1``: fit the GLM on this model's judgments plus the two "gamed" baselines
    (weighted 0.2 between them), then predict every instruction with no length difference.

    ``judged``: ``index``, ``preference`` (P(model wins), NaN if unusable), ``output`` (the model's),
    ``reference``; ``gamed``: alpaca_eval's ``df_gamed.csv`` columns ``index``, ``preference`` (already in
    [0, 1]),
    ``std_delta_len``, ``instruction_difficulty``, ``not_gamed_baseline``; ``difficulty``: index -> value.
    Returns (LC win rate, its standard error), in percent."""
    delta = judged["reference"].str.len() - judged["output"].str.len()
    ours = pd.DataFrame(
        {
            "index": judged["index"].to_numpy(),
            "preference": judged["preference"].to_numpy(float),
            "std_delta_len": (delta / delta.std()).to_numpy(float),
            "instruction_difficulty": judged["index"].map(difficulty).to_numpy(float),
            "not_gamed_baseline": True,
        }
    )
    if ours["instruction_difficulty"].isna().any():
        raise ValueError("an instruction has no difficulty in the GLM data: the references do not match it")
    train = pd.concat([gamed[ours.columns], ours], ignore_index=True)
    train = train[train["preference"].notna()]
    weight = np.where(train["not_gamed_baseline"].astype(bool), 1.0, REGULARIZE_TO_BASELINE / 2)
    x, p = _features(train), train["preference"].to_numpy(float)
    model = _fit(x, p, weight, _best_c(x, p, weight))
    predicted = model.predict_proba(_features(ours.assign(std_delta_len=0.0)))[:, 1]
    stderr = float(pd.Series(predicted).sem() * 100) if len(predicted) > 1 else math.nan
    return float(predicted.mean() * 100), stderr
