"""Evaluate base models and kept checkpoints on a suite through lm-eval's Python API.

Each model is loaded once (an ``HFLM``, or lm-eval's ``VLLM`` backend); LoRA epochs are loaded as PEFT
adapters on top of their base model (``HFLM(peft=...)``), never merged to disk. After every
(model, benchmark, shots) the row is upserted into ``<root>/scores.parquet``, so an interrupted run
resumes where it stopped and finished pairs are skipped."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from common.catalog import BENCHMARK_FAMILIES
from common.errors import MassiveSFTError
from common.io import file_lock, read_json
from common.layout import Checkpoint, OutputRoot
from common.schema import read_scores, upsert_scores
from common.selection import matches, parse_filter
from evaluation.quiet_logs import quiet_lm_eval
from evaluation.sandbox import require_isolation, unsandboxed_code_allowed
from evaluation.suites import Suite, SuiteEntry, load_suite, prepare_suite, task_manager
from jobs.executors import RunSummary as TasksSummary
from jobs.executors import SlurmOptions, Task, run_tasks
from jobs.resources import Resources

log = logging.getLogger(__name__)
BACKENDS = ("hf", "vllm")
PERCENT_METRICS = ("acc", "acc_norm", "exact_match", "pass@1", "mc1", "mc2", "f1", "em")


class EvaluationError(MassiveSFTError, RuntimeError):
    """A model or task that cannot be evaluated (missing backend, metric not produced, ...)."""


@dataclass(frozen=True)
class EvalModel:
    """One model to evaluate: its identity columns and where to load it from."""

    model_id: str
    path: str  # full model folder / Hub id, or the LoRA adapter folder
    identity: dict[str, Any]
    base_path: str | None = None  # LoRA only: the base model the adapter is applied to

    @property
    def is_adapter(self) -> bool:
        return self.base_path is not None


@dataclass
class RunSummary:
    evaluated: list[tuple[str, str, int]] = field(default_factory=list)  # (model_id, benchmark, shots)
    skipped: list[tuple[str, str, int]] = field(default_factory=list)
    failed: list[tuple[str, str, int, str]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def render(self) -> str:
        lines = [
            f"evaluated {len(self.evaluated)} (model, benchmark, shots), skipped {len(self.skipped)} "
            f"already in scores.parquet, failed {len(self.failed)}"
        ]
        if self.rows:
            # one line per model, one column per benchmark: readable for a whole grid
            table = pd.DataFrame(self.rows).pivot_table(index="model_id", columns="benchmark", values="value")
            lines.append(table.round(1).to_string())
        lines += [f"  FAILED {m} {b} {s}-shot: {error}" for m, b, s, error in self.failed]
        return "\n".join(lines)


# ---------------------------------------------------------------- which models


def base_identity(job_record: dict[str, Any]) -> dict[str, Any]:
    return {
        "model_id": job_record["base_model_name"],
        "run_id": None,
        "base_model": job_record["base_model"],
        "base_model_name": job_record["base_model_name"],
        "dataset": "pretrain",
        "method": "base",
        "data_size": 0,
        "epoch": 0,
        "lr_schedule": "none",
    }


def checkpoint_model(checkpoint: Checkpoint) -> EvalModel:
    record = checkpoint.record
    base_path = str(record.base_model_path) if record.method == "lora" else None
    return EvalModel(record.model_id, str(checkpoint.folder), record.identity(), base_path=base_path)


def discover_models(
    root: Path, grid: str | None = None, only: str | None = None, include_base: bool = True
) -> list[EvalModel]:
    """Base models then every kept checkpoint under ``<root>/runs``. The base models are those of the
    jobs training recorded in ``<root>/jobs.jsonl`` (of ``grid`` only, when given) and of the runs found;
    ``only`` filters by job fields as in training (``dataset=demo_facts,method=lora``)."""
    layout = OutputRoot(root)
    checkpoints = list(layout.iter_checkpoints())
    planned = layout.read_jobs()
    if grid is not None:
        planned = [job for job in planned if job["grid"] == Path(grid).stem]
        if not planned:
            raise EvaluationError(
                f"{layout.jobs_manifest} records no job of grid {Path(grid).stem!r}: run "
                f"`python -m training prepare --grid {grid} --root {root}` (or `training run`) first"
            )
    records = [c.record.job for c in checkpoints] + planned
    terms = parse_filter(only, {key for record in records for key in record} | {"run_id"})
    models = [checkpoint_model(c) for c in checkpoints if matches(c.record.job, terms)]
    if not include_base:
        return models
    sources = [(job, job["base_model_path"]) for job in planned if matches(job, terms)]
    sources += [(c.record.job, c.record.base_model_path) for c in checkpoints if matches(c.record.job, terms)]
    bases: dict[str, EvalModel] = {}
    for job, location in sources:
        bases.setdefault(
            job["base_model_name"], EvalModel(job["base_model_name"], str(location), base_identity(job))
        )
    return [*bases.values(), *models]


# ---------------------------------------------------------------- how to load and score them


def make_lm(model: EvalModel, backend: str = "hf", batch_size: int | str = 8, device: str | None = None):
    """An lm-eval LM for ``model``; adapters are applied in memory on top of their base."""
    if backend == "vllm":
        if importlib.util.find_spec("vllm") is None:
            raise EvaluationError(
                "--backend vllm needs the vllm package: pip install 'massive-sft[vllm]' "
                "(GPU only), or use --backend hf"
            )
        from lm_eval.models.vllm_causallms import VLLM

        if model.is_adapter:
            return VLLM(
                pretrained=model.base_path,
                lora_local_path=model.path,
                batch_size=batch_size,
                max_lora_rank=64,
            )
        return VLLM(pretrained=model.path, batch_size=batch_size)
    if backend != "hf":
        raise EvaluationError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
    import torch
    from lm_eval.models.huggingface import HFLM

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if model.is_adapter:
        # An adapter saved without its tokenizer (a submitted one may be) uses its base model's.
        own_tokenizer = (Path(model.path) / "tokenizer_config.json").exists()
        return HFLM(
            pretrained=model.base_path,
            peft=model.path,
            tokenizer=model.path if own_tokenizer else model.base_path,
            batch_size=batch_size,
            device=device,
        )
    return HFLM(pretrained=model.path, batch_size=batch_size, device=device)


def _metric_value(results: dict[str, Any], task: str, metric: str) -> tuple[float, float | None]:
    scores = results["results"].get(task, {})
    for key, value in scores.items():
        name, _, _filter = key.partition(",")
        if name == metric and isinstance(value, (int, float)):
            stderr = scores.get(f"{metric}_stderr,{_filter}")
            return float(value), float(stderr) if isinstance(stderr, (int, float)) else None
    raise EvaluationError(
        f"task {task!r} produced no metric {metric!r}; it produced "
        f"{sorted(scores)} — fix the suite's metric field"
    )


def _n_samples(results: dict[str, Any], task: str) -> int | None:
    counts = results.get("n-samples", {})
    if task in counts:
        return int(counts[task]["effective"])
    subtasks = results.get("group_subtasks", {}).get(task, [])
    total = sum(int(counts[name]["effective"]) for name in subtasks if name in counts)
    return total or None


def score_row(model: EvalModel, entry: SuiteEntry, results: dict[str, Any]) -> dict[str, Any]:
    from lm_eval import __version__ as lm_eval_version

    value, stderr = _metric_value(results, entry.task, entry.metric)
    scale = 100.0 if entry.metric in PERCENT_METRICS else 1.0  # lm-eval reports fractions
    return {
        **model.identity,
        "benchmark": entry.benchmark,
        "shots": entry.shots,
        "metric": entry.metric,
        "value": value * scale,
        "stderr": None if stderr is None else stderr * scale,
        "n_samples": _n_samples(results, entry.task),
        "source": "lm-eval",
        "harness_version": lm_eval_version,
        "evaluated_at": datetime.now(timezone.utc).isoformat(),
        "model_path": model.path,
        "flags": "",
    }


def evaluate_entry(lm, entry: SuiteEntry, manager, limit: int | None = None) -> dict[str, Any]:
    """One lm-eval run of one task at the entry's shot setting."""
    from lm_eval import simple_evaluate

    limit = limit if limit is not None else entry.limit
    results = simple_evaluate(
        model=lm,
        tasks=[entry.task],
        num_fewshot=entry.shots,
        limit=limit,
        task_manager=manager,
        log_samples=False,
        bootstrap_iters=1000,
        confirm_run_unsafe_code=True,
    )  # code runs in evaluation.sandbox
    if results is None:
        raise EvaluationError(f"lm-eval returned no results for {entry.task} (not rank 0?)")
    return results


# ---------------------------------------------------------------- the run


@dataclass(frozen=True)
class RunOptions:
    limit: int | None = None  # overrides every entry's limit
    batch_size: int | str = 8
    backend: str = "hf"
    device: str | None = None
    raise_errors: bool = False
    allow_unsandboxed_code: bool = False  # run generated code even where it cannot be isolated


def done_keys(scores_path: Path) -> set[tuple[str, str, int]]:
    scores = read_scores(scores_path)
    return {
        (str(m), str(b), int(s))
        for m, b, s in zip(scores["model_id"], scores["benchmark"], scores["shots"], strict=True)
    }


def evaluate_models(
    root: Path,
    suite: Suite,
    models: Sequence[EvalModel],
    options: RunOptions,
    lm_factory: Callable[..., Any] = make_lm,
) -> RunSummary:
    """Evaluate every (model, entry) not yet in ``<root>/scores.parquet``; each result is written as
    soon as it exists."""
    root = Path(root)
    scores_path = OutputRoot(root).scores
    quiet_lm_eval()
    prepare_suite(suite, root)
    finished = done_keys(scores_path)
    summary = RunSummary()
    todo: list[tuple[EvalModel, list[SuiteEntry]]] = []
    for model in models:
        entries = suite.lm_entries  # judged entries run through evaluation.judged
        pending = [e for e in entries if (model.model_id, e.benchmark, e.shots) not in finished]
        summary.skipped += [(model.model_id, e.benchmark, e.shots) for e in entries if e not in pending]
        if pending:
            todo.append((model, pending))
    if not todo:
        return summary
    _check_code_isolation([e for _, pending in todo for e in pending], options)
    manager = task_manager(suite, root)
    progress = tqdm(total=sum(len(p) for _, p in todo), desc="evaluating (model, benchmark)", unit="pair")
    with unsandboxed_code_allowed(options.allow_unsandboxed_code):
        for model, pending in todo:
            lm = lm_factory(model, options.backend, options.batch_size, options.device)
            for entry in pending:
                progress.set_postfix_str(f"{model.model_id} {entry.benchmark} {entry.shots}-shot")
                _evaluate_one(OutputRoot(root), lm, model, entry, manager, options, summary)
                progress.update()
            del lm  # free the weights before loading the next model
    progress.close()
    return summary


def _check_code_isolation(entries: Sequence[SuiteEntry], options: RunOptions) -> None:
    """Refuse before any model is loaded when code benchmarks would run generated code unisolated."""
    if any(BENCHMARK_FAMILIES.get(e.benchmark) == "code" for e in entries):
        require_isolation(options.allow_unsandboxed_code)


def _evaluate_one(
    root: OutputRoot,
    lm,
    model: EvalModel,
    entry: SuiteEntry,
    manager,
    options: RunOptions,
    summary: RunSummary,
) -> None:
    key = (model.model_id, entry.benchmark, entry.shots)
    try:
        row = score_row(model, entry, evaluate_entry(lm, entry, manager, options.limit))
    except Exception as error:  # one broken task must not lose the other results
        if options.raise_errors:
            raise
        log.exception("evaluation of %s failed", key)
        summary.failed.append((*key, f"{type(error).__name__}: {error}"))
        return
    # Parallel workers share scores.parquet: the read-merge-write of an upsert must not interleave.
    with file_lock(root.scores_lock):
        upsert_scores(root.scores, pd.DataFrame([row]))
    summary.evaluated.append(key)
    summary.rows.append(row)


def shard(models: Sequence[EvalModel], index: int, count: int) -> list[EvalModel]:
    """Worker ``index`` of ``count`` takes every count-th model: shards are disjoint and cover all."""
    if not 0 <= index < count:
        raise EvaluationError(f"shard {index}/{count}: need 0 <= index < count")
    return list(models[index::count])


def run_suite(
    root: Path,
    suite: str | Path,
    grid: str | None = None,
    only: str | None = None,
    options: RunOptions | None = None,
    shard_spec: tuple[int, int] = (0, 1),
) -> RunSummary:
    """``python -m evaluation run`` as a function: discover models, evaluate what is missing."""
    loaded = load_suite(suite)
    _check_code_isolation(loaded.entries, options or RunOptions())  # before base models are built
    models = discover_models(Path(root), grid=grid, only=only)
    if not models:
        raise EvaluationError(
            f"no models to evaluate under {root}: no runs/*/epoch-*/run.json and no jobs.jsonl "
            "to take base models from (train or prepare a grid first: python -m training prepare)"
        )
    return evaluate_models(Path(root), loaded, shard(models, *shard_spec), options or RunOptions())


# ---------------------------------------------------------------- spreading models over workers


def evaluate_model_task(root: str, suite: str, model: EvalModel, options: RunOptions) -> str:
    """One executor task (module level, so it pickles): evaluate one model on the suite."""
    summary = evaluate_models(Path(root), load_suite(suite), [model], options)
    if summary.failed:
        raise EvaluationError("; ".join(f"{b} {s}-shot: {e}" for _, b, s, e in summary.failed))
    return "done" if summary.evaluated else "skipped"


# What evaluating one model asks of a cluster when its recipe is unknown (models outside any grid).
DEFAULT_EVALUATION_RESOURCES = Resources(gpus=1, cpus=8, mem_gb=64, time_min=240)


def evaluation_resources(training: Resources) -> Resources:
    """Evaluating a model needs what training it did, on one GPU at most (one lm-eval process)."""
    return replace(training, gpus=min(training.gpus, 1), deepspeed_config=None, micro_batch_size=None)


def model_resources(models: Sequence[EvalModel], root: Path) -> dict[str, Resources]:
    """Each model's resources from the recipe: a checkpoint's from its run.json, a base model's from the
    jobs trained on it (training's jobs.jsonl, else the runs found)."""
    by_base: dict[str, dict[str, Any]] = {}
    for job in OutputRoot(root).read_jobs():
        by_base.setdefault(job["base_model_name"], job.get("resources", {}))
    recorded: dict[str, dict[str, Any]] = {}
    for model in models:
        if model.identity["run_id"] is not None:
            recorded[model.model_id] = read_json(Path(model.path) / "run.json")["job"].get("resources", {})
            by_base.setdefault(model.identity["base_model_name"], recorded[model.model_id])
    resources = {}
    for model in models:
        found = recorded.get(model.model_id, by_base.get(model.identity["base_model_name"]))
        resources[model.model_id] = (
            evaluation_resources(Resources(**found)) if found is not None else DEFAULT_EVALUATION_RESOURCES
        )
    return resources


def run_suite_distributed(
    root: Path,
    suite: str | Path,
    grid: str | None = None,
    only: str | None = None,
    options: RunOptions | None = None,
    executor: str = "local",
    workers: int = 1,
    slurm_options: SlurmOptions | None = None,
    resources: Resources | None = None,
) -> TasksSummary:
    """One task per model through the shared executors (local subprocesses, or Slurm job arrays with
    each model's resources from its recipe, unless ``resources`` gives one request for all)."""
    root = Path(root)
    loaded = load_suite(suite)
    _check_code_isolation(loaded.entries, options or RunOptions())
    prepare_suite(loaded, root)  # once, before workers race to write the same files
    models = discover_models(root, grid=grid, only=only)
    finished = done_keys(OutputRoot(root).scores)
    pending = [
        m
        for m in models
        if any((m.model_id, e.benchmark, e.shots) not in finished for e in loaded.lm_entries)
    ]
    requests = model_resources(pending, root)
    tasks = [
        Task(
            f"eval-{m.model_id.replace('/', '-')}",
            evaluate_model_task,
            (str(root), str(loaded.path), m, options or RunOptions()),
            resources or requests[m.model_id],
        )
        for m in pending
    ]
    return run_tasks(tasks, OutputRoot(root).eval_work_dir, executor, workers, slurm_options)
