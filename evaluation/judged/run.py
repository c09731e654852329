"""Judged benchmarks end to end, per model: answers (generated, or from the cache), judgments (from the
judge, or from the cache), scores upserted into ``<root>/scores.parquet``.

Before any work it prints the judge calls the run will make and their tokens (estimated); then a
progress bar per phase (answers, judgments). Nothing is skipped by looking at ``scores.parquet``: the
caches decide, so a changed judge redoes only the judgments and a retrained model only its own work."""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from tqdm.auto import tqdm

from common.catalog import JUDGED_BENCHMARKS
from common.errors import UsageError
from common.io import file_lock
from common.layout import OutputRoot
from common.schema import upsert_scores
from evaluation.judged import alpacaeval, mtbench
from evaluation.judged.answers import AnswerGenerator, Conversation, GenerationSettings
from evaluation.judged.cache import JsonlCache, answers_cache, judgments_cache, record_key
from evaluation.judged.client import (
    ChatRequest,
    JudgeClient,
    JudgeError,
    JudgeSettings,
    message_text,
    top_logprobs,
)
from evaluation.judged.data import (
    ALPACAEVAL_DATASET,
    MTBENCH_DATASET,
    AlpacaEvalData,
    load_alpacaeval,
    load_mtbench,
)
from evaluation.runner import EvalModel

log = logging.getLogger(__name__)
MTBENCH, ALPACAEVAL = JUDGED_BENCHMARKS  # the benchmark names of scores.parquet
BENCHMARK_ALIASES = {"mtbench": MTBENCH, "alpacaeval": ALPACAEVAL, "alpaca_eval_v2": ALPACAEVAL}
SOURCE = "llm-judge"
CHARS_PER_TOKEN = 4  # for the estimate only


def benchmark_name(alias: str) -> str:
    if alias not in BENCHMARK_ALIASES:
        raise UsageError(f"unknown judged benchmark {alias!r}; choose from {sorted(BENCHMARK_ALIASES)}")
    return BENCHMARK_ALIASES[alias]


@dataclass(frozen=True)
class JudgedOptions:
    judge: JudgeSettings
    benchmarks: tuple[str, ...] = (MTBENCH, ALPACAEVAL)
    mtbench_data: str = MTBENCH_DATASET
    alpacaeval_data: str = ALPACAEVAL_DATASET
    limit: int | None = None  # questions / instructions per benchmark (quick checks)
    generation: GenerationSettings = field(default_factory=GenerationSettings)


@dataclass
class JudgedSummary:
    rows: list[dict[str, Any]] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # (model_id, benchmark, error)
    unusable: dict[tuple[str, str], int] = field(default_factory=dict)  # judgments without a verdict
    judge_requests: int = 0  # HTTP requests sent to the judge, retries included
    judge_retries: int = 0
    generated: int = 0  # answers the models wrote in this run (the rest came from the cache)
    estimate: dict[str, int] = field(default_factory=dict)

    def render(self) -> str:
        lines = [
            f"judged benchmarks: {len(self.rows)} scores, {self.generated} answers generated, "
            f"{self.judge_requests} judge requests ({self.judge_retries} retries), {len(self.failed)} failed"
        ]
        if self.rows:
            table = pd.DataFrame(self.rows)
            table["column"] = table["benchmark"] + "-" + table["metric"]
            lines.append(
                table.pivot_table(index="model_id", columns="column", values="value").round(2).to_string()
            )
        lines += [
            f"  {n} judgments of {m} on {b} gave no usable verdict (left out of the means)"
            for (m, b), n in self.unusable.items()
            if n
        ]
        lines += [f"  FAILED {m} {b}: {error}" for m, b, error in self.failed]
        return "\n".join(lines)


# ---------------------------------------------------------------- one benchmark, one model


@dataclass
class JudgeItem:
    key: str  # cache key of the judgment
    request: ChatRequest
    meta: dict[str, Any]


class Benchmark(ABC):
    """What differs between MT-Bench and AlpacaEval; the run loop is shared."""

    name: str

    @abstractmethod
    def answer(self, model: EvalModel, generator: AnswerGenerator, cache: JsonlCache, progress) -> dict:
        raise NotImplementedError

    @abstractmethod
    def cached_answers(self, model: EvalModel, generator: AnswerGenerator, cache: JsonlCache) -> dict:
        raise NotImplementedError

    @abstractmethod
    def judge_items(self, judge: JudgeSettings, answers: dict) -> list[JudgeItem]:
        raise NotImplementedError

    @abstractmethod
    def verdict(self, item: JudgeItem, response: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    @abstractmethod
    def scores(
        self, judgments: list[dict[str, Any]]
    ) -> tuple[list[tuple[str, float, float | None, int]], int]:
        """([(metric, value, stderr, n)], number of unusable judgments)."""
        raise NotImplementedError

    @abstractmethod
    def count(self) -> int:
        raise NotImplementedError


def _answer_key(benchmark: str, model: EvalModel, generator: AnswerGenerator, *content: Any) -> str:
    settings = generator.settings
    return record_key(
        benchmark, model.model_id, generator.format, settings.max_new_tokens, settings.seed, content
    )


def _judgment_key(judge: JudgeSettings, request: ChatRequest) -> str:
    return record_key(judge.identity, request.payload(judge.model))


class MTBench(Benchmark):
    name = MTBENCH

    def __init__(self, questions: list[mtbench.Question]):
        self.questions = questions
        self.prompts = mtbench.load_prompts()

    def count(self) -> int:
        return 2 * len(self.questions)

    def _turn_key(self, model, generator, question, turn: int, earlier: tuple[str, ...]) -> str:
        temperature = mtbench.TEMPERATURES[question.category]
        return _answer_key(self.name, model, generator, question.turns[:turn], earlier, temperature)

    def cached_answers(self, model, generator, cache) -> dict:
        answers: dict[str, tuple[str, ...]] = {}
        for question in self.questions:
            turns: tuple[str, ...] = ()
            for turn in (1, 2):
                record = cache.get(self._turn_key(model, generator, question, turn, turns))
                if record is None:
                    break
                turns += (record["answer"],)
            answers[question.question_id] = turns
        return answers

    def answer(self, model, generator, cache, progress) -> dict:
        answers = self.cached_answers(model, generator, cache)
        for turn in (1, 2):
            pending = [q for q in self.questions if len(answers[q.question_id]) == turn - 1]
            for temperature in sorted({mtbench.TEMPERATURES[q.category] for q in pending}):
                group = [q for q in pending if mtbench.TEMPERATURES[q.category] == temperature]
                conversations: list[Conversation] = [
                    tuple(zip(q.turns[:turn], (*answers[q.question_id], None), strict=True)) for q in group
                ]
                for question, text in zip(
                    group, generator.generate(conversations, temperature, progress), strict=True
                ):
                    earlier = answers[question.question_id]
                    key = self._turn_key(model, generator, question, turn, earlier)
                    cache.put({"key": key, "question_id": question.question_id, "turn": turn, "answer": text})
                    answers[question.question_id] = (*earlier, text)
        return answers

    def judge_items(self, judge, answers) -> list[JudgeItem]:
        items = []
        for question in self.questions:
            given = answers.get(question.question_id, ())
            for turn in (1, 2):
                texts = given if len(given) >= turn else ("",) * turn  # unknown yet: estimate only
                request = mtbench.judge_request(self.prompts, question, texts, turn)
                meta = {"question_id": question.question_id, "category": question.category, "turn": turn}
                items.append(JudgeItem(_judgment_key(judge, request), request, meta))
        return items

    def verdict(self, item, response) -> dict[str, Any]:
        judgment = message_text(response)
        return {**item.meta, "rating": mtbench.parse_rating(judgment), "judgment": judgment}

    def scores(self, judgments):
        by_id = {q.question_id: q for q in self.questions}
        ratings = [(by_id[j["question_id"]], int(j["turn"]), float(j["rating"])) for j in judgments]
        result = mtbench.aggregate(ratings)
        rows = [("total", result.total, None, result.n_valid)]
        rows += [
            (category, result.categories[category], None, result.per_category_n[category])
            for category in mtbench.CATEGORIES
            if category in result.categories
        ]
        return [r for r in rows if not math.isnan(r[1])], result.n_invalid


class AlpacaEval(Benchmark):
    name = ALPACAEVAL

    def __init__(self, data: AlpacaEvalData):
        self.data = data
        self.prompt = alpacaeval.load_prompt()
        self.by_index = {item.index: item for item in data.instructions}

    def count(self) -> int:
        return len(self.data.instructions)

    def _key(self, model, generator, item: alpacaeval.Instruction) -> str:
        return _answer_key(self.name, model, generator, item.instruction, 0.0)

    def cached_answers(self, model, generator, cache) -> dict:
        answers = {}
        for item in self.data.instructions:
            record = cache.get(self._key(model, generator, item))
            if record is not None:
                answers[item.index] = record["answer"]
        return answers

    def answer(self, model, generator, cache, progress) -> dict:
        answers = self.cached_answers(model, generator, cache)
        pending = [item for item in self.data.instructions if item.index not in answers]
        if pending:
            texts = generator.generate([((item.instruction, None),) for item in pending], 0.0, progress)
            for item, text in zip(pending, texts, strict=True):
                cache.put({"key": self._key(model, generator, item), "index": item.index, "answer": text})
                answers[item.index] = text
        return answers

    def judge_items(self, judge, answers) -> list[JudgeItem]:
        items = []
        for item in self.data.instructions:
            answer = answers.get(item.index, "")
            request = alpacaeval.judge_request(self.prompt, item, answer)
            meta = {"index": item.index, "output": answer}
            items.append(JudgeItem(_judgment_key(judge, request), request, meta))
        return items

    def verdict(self, item, response) -> dict[str, Any]:
        instruction = self.by_index[item.meta["index"]].instruction
        text = message_text(response)
        preference = alpacaeval.model_preference(instruction, text, top_logprobs(response))
        return {**item.meta, "preference": None if math.isnan(preference) else preference, "judgment": text}

    def scores(self, judgments):
        references = {index: item.reference for index, item in self.by_index.items()}
        frame = pd.DataFrame(
            {
                "index": [j["index"] for j in judgments],
                "preference": [math.nan if j["preference"] is None else j["preference"] for j in judgments],
                "output": [j["output"] for j in judgments],
            }
        )
        frame["reference"] = frame["index"].map(references)
        value, stderr = alpacaeval.win_rate(frame["preference"])
        n_valid = int(frame["preference"].notna().sum())
        rows = [("win_rate", value, stderr, n_valid)]
        if self.data.gamed is not None and n_valid:
            lc, lc_stderr = alpacaeval.length_controlled_win_rate(
                frame, self.data.gamed, self.data.difficulty
            )
            rows.append(("lc_win_rate", lc, lc_stderr, n_valid))
        return [r for r in rows if not math.isnan(r[1])], len(frame) - n_valid


# ---------------------------------------------------------------- the run


def load_benchmarks(options: JudgedOptions) -> list[Benchmark]:
    loaded: list[Benchmark] = []
    for name in options.benchmarks:
        if name == MTBENCH:
            loaded.append(MTBench(load_mtbench(options.mtbench_data, options.limit)))
        elif name == ALPACAEVAL:
            loaded.append(AlpacaEval(load_alpacaeval(options.alpacaeval_data, options.limit)))
    return loaded


def estimate(
    root: Path, models: Sequence[EvalModel], benchmarks: Sequence[Benchmark], options
) -> dict[str, int]:
    """Judge calls still to make (cached judgments of cached answers excluded) and their tokens: input
    from the prompts' length, answers not yet written counted at the generation limit."""
    calls = tokens_in = tokens_out = 0
    unknown_answer = options.generation.max_new_tokens * CHARS_PER_TOKEN
    for model in models:
        generator = AnswerGenerator(model, options.generation)
        for benchmark in benchmarks:
            answers = benchmark.cached_answers(
                model, generator, answers_cache(root, model.model_id, benchmark.name)
            )
            cache = judgments_cache(root, model.model_id, benchmark.name, options.judge.identity)
            for item in benchmark.judge_items(options.judge, answers):
                if item.key in cache:
                    continue
                calls += 1
                chars = sum(len(m["content"]) for m in item.request.messages)
                known = _answer_known(item, answers)
                tokens_in += (chars + (0 if known else unknown_answer)) // CHARS_PER_TOKEN
                tokens_out += item.request.max_tokens
    return {"calls": calls, "tokens_in": tokens_in, "tokens_out_max": tokens_out}


def _answer_known(item: JudgeItem, answers: dict) -> bool:
    if "question_id" in item.meta:
        return len(answers.get(item.meta["question_id"], ())) >= item.meta["turn"]
    return item.meta["index"] in answers


def _judge(
    client: JudgeClient, benchmark: Benchmark, items: list[JudgeItem], cache: JsonlCache, label: str
) -> list[dict[str, Any]]:
    pending = [(item, item.request) for item in items if item.key not in cache]
    errors: list[str] = []
    for item, outcome in client.complete_all(pending, f"judging {label}"):
        if isinstance(outcome, JudgeError):
            errors.append(str(outcome))
            continue
        cache.put({"key": item.key, **benchmark.verdict(item, outcome)})
    if errors:
        raise JudgeError(f"{len(errors)} of {len(pending)} judge calls failed; first: {errors[0]}")
    return [cache.get(item.key) for item in items]  # type: ignore[misc]


def score_rows(
    model: EvalModel, benchmark: str, scores: list[tuple[str, float, float | None, int]], judge: JudgeSettings
) -> list[dict[str, Any]]:
    now = datetime.now(timezone.utc).isoformat()
    return [
        {
            **model.identity,
            "benchmark": benchmark,
            "shots": 0,
            "metric": metric,
            "value": float(value),
            "stderr": None if stderr is None or math.isnan(stderr) else float(stderr),
            "n_samples": n,
            "source": SOURCE,
            "harness_version": "massive-sft judged (FastChat single-v1 / alpaca_eval clf prompts)",
            "judge": judge.identity,
            "evaluated_at": now,
            "model_path": model.path,
            "flags": "",
        }
        for metric, value, stderr, n in scores
    ]


def run_judged(
    root: Path,
    models: Sequence[EvalModel],
    options: JudgedOptions,
    transport: httpx.BaseTransport | None = None,
    echo: Callable[[str], None] = print,
) -> JudgedSummary:
    root = Path(root)
    benchmarks = load_benchmarks(options)
    summary = JudgedSummary(estimate=estimate(root, models, benchmarks, options))
    est = summary.estimate
    echo(
        f"judge {options.judge.identity} ({options.judge.model} at {options.judge.host}): about "
        f"{est['calls']} calls for {len(models)} model(s) on {', '.join(b.name for b in benchmarks)}, "
        f"~{est['tokens_in']:,} input tokens and at most {est['tokens_out_max']:,} output tokens"
    )
    generators = {m.model_id: AnswerGenerator(m, options.generation) for m in models}
    answers = _generate_all(root, models, benchmarks, generators, summary)
    with JudgeClient(options.judge, transport=transport) as client:
        for model in models:
            for benchmark in benchmarks:
                if (model.model_id, benchmark.name) not in answers:
                    continue  # its generation failed: already reported
                _judge_and_score(
                    root, client, model, benchmark, answers[model.model_id, benchmark.name], options, summary
                )
        summary.judge_requests, summary.judge_retries = client.stats.requests, client.stats.retries
    return summary


def _generate_all(root, models, benchmarks, generators, summary: JudgedSummary) -> dict:
    """Phase 1: every model's answers, one model's weights in memory at a time."""
    answers: dict[tuple[str, str], dict] = {}
    caches = {
        (m.model_id, b.name): answers_cache(root, m.model_id, b.name) for m in models for b in benchmarks
    }
    missing = {
        key: b.count() - _answered(b.cached_answers(m, generators[m.model_id], caches[key]))
        for m in models
        for b in benchmarks
        for key in [(m.model_id, b.name)]
    }
    with tqdm(total=sum(missing.values()), desc="generating answers", unit="answer") as progress:
        for model in models:
            generator = generators[model.model_id]
            for benchmark in benchmarks:
                key = (model.model_id, benchmark.name)
                try:
                    answers[key] = benchmark.answer(model, generator, caches[key], progress)
                    summary.generated += missing[key]
                except Exception as error:  # one model that cannot generate must not stop the others
                    log.exception("generation for %s %s failed", *key)
                    summary.failed.append((*key, f"{type(error).__name__}: {error}"))
            generator.release()
    return answers


def _answered(answers: dict) -> int:
    """Answers in a cached-answers mapping (MT-Bench maps a question to its turns)."""
    return sum(len(v) if isinstance(v, tuple) else 1 for v in answers.values())


def _judge_and_score(root, client, model, benchmark, answers, options, summary: JudgedSummary) -> None:
    """Phase 2 for one (model, benchmark): judge what is not cached, then score."""
    cache = judgments_cache(root, model.model_id, benchmark.name, options.judge.identity)
    try:
        judgments = _judge(
            client,
            benchmark,
            benchmark.judge_items(options.judge, answers),
            cache,
            f"{model.model_id} {benchmark.name}",
        )
        scores, unusable = benchmark.scores(judgments)
    except (JudgeError, ValueError) as error:
        summary.failed.append((model.model_id, benchmark.name, str(error)))
        return
    summary.unusable[model.model_id, benchmark.name] = unusable
    rows = score_rows(model, benchmark.name, scores, options.judge)
    if not rows:
        summary.failed.append((model.model_id, benchmark.name, "no judgment gave a usable verdict"))
        return
    layout = OutputRoot(root)
    with file_lock(layout.scores_lock):
        upsert_scores(layout.scores, pd.DataFrame(rows))
    summary.rows += rows
