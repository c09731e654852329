"""MT-Bench single-answer grading as FastChat's ``gen_judgment.py --mode single`` does it: one judgment per
(question, turn), the math prompts with reference answers for math, reasoning and coding, a rating
``[[N]]`` parsed from the judgment, per-category means over both turns and the overall mean."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluation.judged.client import ChatRequest

PROMPTS_FILE = Path(__file__).resolve().parent / "prompts" / "mtbench_judge_prompts.jsonl"
CATEGORIES = ("writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities")
NEED_REFERENCE = frozenset({"math", "reasoning", "coding"})
# FastChat's answer-generation temperatures per category (greedy below 1e-4).
TEMPERATURES = {
    "writing": 0.7,
    "roleplay": 0.7,
    "extraction": 0.0,
    "math": 0.0,
    "coding": 0.0,
    "reasoning": 0.0,
    "stem": 0.1,
    "humanities": 0.1,
}
JUDGE_MAX_TOKENS = 2048  # FastChat's, for OpenAI judges
RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
RATING_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")
INVALID = -1.0  # FastChat's value for a judgment without a usable rating; excluded from the means


@dataclass(frozen=True)
class Question:
    question_id: str
    category: str
    turns: tuple[str, ...]
    reference: tuple[str, ...] = ()


def load_prompts(path: Path = PROMPTS_FILE) -> dict[str, dict[str, Any]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return {p["name"]: p for p in (json.loads(line) for line in lines if line.strip())}


def prompt_name(question: Question, turn: int) -> str:
    math_prompt = question.category in NEED_REFERENCE and bool(question.reference)
    return ("single-math-v1" if math_prompt else "single-v1") + ("-multi-turn" if turn == 2 else "")


def judge_request(
    prompts: dict[str, dict[str, Any]], question: Question, answers: tuple[str, ...], turn: int
) -> ChatRequest:
    """The judge's messages for one turn, filled in as FastChat's ``run_judge_single`` does."""
    template = prompts[prompt_name(question, turn)]
    fields: dict[str, str] = {}
    if template["category"] == "math":
        fields["ref_answer_1"] = question.reference[0]
        if turn == 2:
            fields["ref_answer_2"] = question.reference[1] if len(question.reference) > 1 else ""
    if turn == 2:
        fields.update(
            question_1=question.turns[0],
            question_2=question.turns[1],
            answer_1=answers[0],
            answer_2=answers[1],
        )
    else:
        fields.update(question=question.turns[0], answer=answers[0])
    user = template["prompt_template"].format(**fields)
    messages = ({"role": "system", "content": template["system_prompt"]}, {"role": "user", "content": user})
    return ChatRequest(messages=messages, max_tokens=JUDGE_MAX_TOKENS, temperature=0.0)


def parse_rating(judgment: str) -> float:
    """FastChat's patterns (``[[7]]``, else ``[7]``); a missing rating or one outside 1-10 is INVALID
    (FastChat keeps out-of-range numbers; a 1-10 scale cannot hold them)."""
    match = RATING.search(judgment) or RATING_BACKUP.search(judgment)
    if not match:
        return INVALID
    rating = float(match.group(1))
    return rating if 1.0 <= rating <= 10.0 else INVALID


@dataclass(frozen=True)
class MTBenchScores:
    total: float
    categories: dict[str, float]  # category -> mean rating over both turns (absent: no valid rating)
    n_valid: int
    n_invalid: int
    per_category_n: dict[str, int]


def aggregate(ratings: list[tuple[Question, int, float]]) -> MTBenchScores:
    """Means over valid ratings, as FastChat's ``show_result.py``: the total over every (question, turn),
    each category over its questions' two turns."""
    valid = [(q, r) for q, _, r in ratings if r != INVALID]
    by_category: dict[str, list[float]] = {}
    for question, rating in valid:
        by_category.setdefault(question.category, []).append(rating)
    total = sum(r for _, r in valid) / len(valid) if valid else math.nan
    return MTBenchScores(
        total=total,
        categories={c: sum(v) / len(v) for c, v in by_category.items()},
        n_valid=len(valid),
        n_invalid=len(ratings) - len(valid),
        per_category_n={c: len(v) for c, v in by_category.items()},
    )
