"""Benchmark runs through lm-eval: suites, paper task configs, the demo suite end to end, LoRA adapters
without merging, resume."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import yaml

from common.schema import read_scores
from common.template import ANSWER_PREFIX, QUESTION_PREFIX
from evaluation.runner import EvaluationError, RunOptions, discover_models, make_lm, run_suite
from evaluation.suites import SuiteError, benchmark_texts, load_suite, parse_suite

PAPER_DIR = Path(__file__).resolve().parents[1] / "evaluation" / "tasks" / "paper"

# One document per paper task, with the fields of its Hub dataset.
CANNED_DOCS: dict[str, dict] = {
    "paper_gsm8k": {"question": "Tom has 2 apples...", "answer": "2+1=3\n#### 3"},
    "paper_math": {"problem": "Compute $1+1$.", "solution": "$\\boxed{2}$", "answer": "2"},
    "paper_humaneval": {"prompt": "def f(x):\n", "entry_point": "f", "test": "", "canonical_solution": ""},
    "paper_mbpp": {"prompt": "Write f.", "test_list": ["assert f(1) == 1"], "code": "def f(x): return x"},
    "paper_hellaswag": {
        "activity_label": "Cooking",
        "ctx_a": "A man cuts.",
        "ctx_b": "he",
        "label": "1",
        "endings": ["a", "b", "c", "d"],
    },
    "paper_nq": {"question": "who wrote hamlet", "answer": ["Shakespeare"]},
    "paper_boolq": {"passage": "Cats are mammals.", "question": "are cats mammals", "label": 1},
    "paper_mmlu": {"question": "2+2?", "choices": ["1", "2", "3", "4"], "answer": 3},
    "paper_truthfulqa": {
        "question": "Is the earth flat?",
        "mc1_targets": {"choices": ["No", "Yes"], "labels": [1, 0]},
    },
    "paper_jmmlu": {
        "question": "日本の首都は?",
        "A": "東京",
        "B": "大阪",
        "C": "京都",
        "D": "札幌",
        "answer": "A",
    },
    "paper_cmmlu": {
        "Question": "中国的首都是?",
        "A": "北京",
        "B": "上海",
        "C": "广州",
        "D": "深圳",
        "Answer": "A",
    },
    "paper_longbench_v2": {
        "context": "Long text.",
        "question": "Q?",
        "choice_A": "a",
        "choice_B": "b",
        "choice_C": "c",
        "choice_D": "d",
        "answer": "C",
    },
}


def _task_configs(task_manager, name: str) -> list[dict]:
    """Fully resolved configs (functions imported) of a task, or of each member of a group."""
    from lm_eval.tasks._yaml_loader import load_yaml

    entry = task_manager.task_index[name]
    raw = load_yaml(entry.yaml_path, resolve_func=True)
    if "group" not in raw:
        return [raw]
    shared = {k: v for k, v in raw.items() if k not in ("group", "task", "aggregate_metric_list", "metadata")}
    return [{**shared, **member} for member in raw["task"]]


def test_every_paper_task_config_validates_without_downloading() -> None:
    from lm_eval.config.task import TaskConfig
    from lm_eval.tasks import TaskManager

    suite = load_suite("paper")
    manager = TaskManager(include_path=[str(PAPER_DIR)], include_defaults=False)
    assert {(e.benchmark, e.shots) for e in suite.entries} >= {("nq", 25), ("hellaswag", 10), ("mbpp", 4)}
    for entry in suite.lm_entries:
        assert entry.task in manager.all_tasks, entry.task
        configs = _task_configs(manager, entry.task)
        assert configs and all(TaskConfig(**c).dataset_path for c in configs)
        config = TaskConfig(**configs[0])
        text = config.doc_to_text(CANNED_DOCS[entry.task])
        assert text.startswith(QUESTION_PREFIX) and text.endswith("\n" + ANSWER_PREFIX.rstrip()), entry.task
        assert entry.metric in {m["metric"] for m in config.metric_list}, entry.task
        if entry.shots > 0:
            assert config.fewshot_split or config.training_split, f"{entry.task} has no few-shot source"
    assert len(_task_configs(manager, "paper_cmmlu")) == 67


def test_paper_suite_lists_judged_benchmarks_apart_from_lm_eval_tasks() -> None:
    suite = load_suite("paper")
    assert {(e.benchmark, e.metric) for e in suite.judged_entries} == {
        ("mtbench", "total"),
        ("alpaca_eval_v2", "win_rate"),
    }
    assert not {e.benchmark for e in suite.lm_entries} & {"mtbench", "alpaca_eval_v2"}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"benchmark": "gsm8kk", "task": "t", "shots": 0, "metric": "acc"}, "unknown benchmark 'gsm8kk'"),
        ({"benchmark": "gsm8k", "task": "t", "shots": 0}, "missing field(s) ['metric']"),
        ({"benchmark": "gsm8k", "task": "t", "shots": -1, "metric": "acc"}, "shots must be an integer"),
        ({"benchmark": "mtbench", "task": "t", "shots": 0, "metric": "total"}, "use task 'judge'"),
        ({"benchmark": "gsm8k", "task": "judge", "shots": 0, "metric": "acc"}, "use task 'judge'"),
        (
            {"benchmark": "gsm8k", "task": "t", "shots": 0, "metric": "acc", "metrc": "x"},
            "unknown field(s) ['metrc']",
        ),
    ],
)
def test_bad_suite_entries_fail_clearly(tmp_path: Path, entry: dict, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "bad", "entries": [entry]}))
    with pytest.raises(SuiteError) as error:
        load_suite(path)
    assert message in str(error.value) and "entries[0]" in str(error.value)


def test_duplicate_benchmark_shots_and_unknown_suite_fail() -> None:
    entry = {"benchmark": "gsm8k", "task": "t", "shots": 0, "metric": "exact_match"}
    with pytest.raises(SuiteError, match="listed twice"):
        parse_suite({"name": "x", "entries": [entry, entry]}, Path("x.yaml"))
    with pytest.raises(SuiteError, match="unknown suite 'nope'"):
        load_suite("nope")


def test_vllm_backend_without_vllm_fails_clearly(tiny_llama: Path) -> None:
    pytest.importorskip("lm_eval")
    if __import__("importlib").util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    from evaluation.runner import EvalModel

    with pytest.raises(EvaluationError, match="pip install"):
        make_lm(EvalModel("m", str(tiny_llama), {}), backend="vllm")


def test_demo_benchmark_texts_are_paper_prompts(tmp_path: Path) -> None:
    texts = benchmark_texts("demo", "demo_facts", tmp_path)
    assert len(texts) == 16 and len(set(texts)) == 16
    assert all(t.startswith(QUESTION_PREFIX + "What is the capital of") for t in texts)
    assert (tmp_path / "eval_data" / "demo_facts.jsonl").exists()


# ---------------------------------------------------------------- end to end on trained tiny models

FACTS_SUITE = {
    "name": "facts",
    "prepare": "demo",
    "entries": [
        {"benchmark": "demo_facts", "task": "demo_facts_mc", "shots": 0, "metric": "acc", "limit": None},
        {
            "benchmark": "demo_facts_gen",
            "task": "demo_facts_gen",
            "shots": 0,
            "metric": "exact_match",
            "limit": None,
        },
    ],
}


def _files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Train full + LoRA on demo_facts with the real trainer, then run the suite once."""
    from training.grid import filter_jobs, load_grid
    from training.trainer import train_job

    root = tmp_path_factory.mktemp("eval-root")
    jobs = filter_jobs(load_grid("demo"), "base_model_name=tiny-llama,dataset=demo_facts")
    for job in jobs:
        # Longer and faster than the demo recipe so that the tiny model surely learns its 16 facts.
        epochs = 4 if job.method == "full" else 1
        train_job(
            dataclasses.replace(
                job, epochs=epochs, checkpoint_epochs=(epochs,), learning_rate=3e-3, batch_size=8
            ),
            root,
        )
    suite = root / "facts.yaml"
    suite.write_text(yaml.safe_dump(FACTS_SUITE))
    before = _files(root)
    summary = run_suite(root, suite, options=RunOptions(batch_size=16, raise_errors=True))
    return {"root": root, "suite": suite, "summary": summary, "new_files": _files(root) - before}


def _scores(root: Path) -> dict[tuple[str, str], float]:
    scores = read_scores(root / "scores.parquet")
    return {
        (m, b): v for m, b, v in zip(scores["model_id"], scores["benchmark"], scores["value"], strict=True)
    }


@pytest.mark.slow
def test_trained_model_beats_its_base_on_demo_facts(evaluated: dict) -> None:
    root = evaluated["root"]
    scores = read_scores(root / "scores.parquet")
    assert len(scores) == 3 * 2 and evaluated["summary"].failed == []
    base = scores[scores["method"] == "base"].iloc[0]
    assert (base["model_id"], base["dataset"], base["epoch"], base["data_size"], base["lr_schedule"]) == (
        "tiny-llama",
        "pretrain",
        0,
        0,
        "none",
    )
    full = scores[scores["method"] == "full"]
    assert full["model_id"].str.fullmatch(r"tiny-llama__demo_facts__full__.*/epoch-04").all()
    assert (scores["source"] == "lm-eval").all() and scores["value"].between(0, 100).all()
    assert (scores["n_samples"] == 16).all() and scores["harness_version"].str.match(r"\d+\.\d+").all()
    values = _scores(root)
    full_id = full["model_id"].iloc[0]
    gain = (
        values[(full_id, "demo_facts")]
        - values[("tiny-llama", "demo_facts")]
        + values[(full_id, "demo_facts_gen")]
        - values[("tiny-llama", "demo_facts_gen")]
    )
    assert values[(full_id, "demo_facts")] > values[("tiny-llama", "demo_facts")]
    assert gain > 20


@pytest.mark.slow
def test_lora_adapter_evaluated_without_merged_weights(evaluated: dict) -> None:
    root = evaluated["root"]
    lora_model = next(m for m in discover_models(root) if m.identity["method"] == "lora")
    adapter = Path(lora_model.path)
    assert (adapter / "adapter_config.json").exists() and not (adapter / "model.safetensors").exists()
    # Evaluation wrote only results and its generated task data: no weights anywhere.
    new = evaluated["new_files"]
    assert Path("scores.parquet") in new
    assert not [p for p in new if p.suffix in (".safetensors", ".bin", ".pt")]
    assert all(p.parts[0] in ("scores.parquet", ".scores.lock", "eval_data") for p in new), new
    values = _scores(root)
    lora_scores = (
        values[(lora_model.model_id, "demo_facts")],
        values[(lora_model.model_id, "demo_facts_gen")],
    )
    base_scores = (values[("tiny-llama", "demo_facts")], values[("tiny-llama", "demo_facts_gen")])
    assert lora_scores != base_scores


@pytest.mark.slow
def test_resume_skips_finished_pairs(evaluated: dict) -> None:
    root = evaluated["root"]
    before = read_scores(root / "scores.parquet")
    summary = run_suite(root, evaluated["suite"], options=RunOptions(raise_errors=True))
    assert summary.evaluated == [] and len(summary.skipped) == 6
    after = read_scores(root / "scores.parquet")
    assert after["evaluated_at"].tolist() == before["evaluated_at"].tolist()


@pytest.mark.slow
def test_models_spread_over_local_workers_give_the_same_scores(evaluated: dict, tmp_path: Path) -> None:
    from evaluation.runner import run_suite_distributed
    from jobs.resources import Resources

    root = tmp_path / "root"
    shutil.copytree(evaluated["root"], root, ignore=shutil.ignore_patterns("scores.parquet", ".scores.lock"))
    summary = run_suite_distributed(
        root,
        evaluated["suite"],
        options=RunOptions(batch_size=16),
        executor="local",
        workers=2,
        resources=Resources(gpus=0, cpus=1),
    )
    assert summary.keys("done") and not summary.keys("failed"), summary
    assert len(summary.keys("done")) == 3  # one task per model: base, full, LoRA
    assert _scores(root) == pytest.approx(_scores(evaluated["root"]))
