"""Executors: one process per task, failures isolated and summarised, manifest states, Slurm parameters and
sbatch scripts, submitit's local executor running a real tiny training job, multi-GPU launch commands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from common.io import read_json
from jobs.executors import (
    SlurmOptions,
    Task,
    job_status,
    launch_command,
    run_tasks,
    sbatch_script,
    slurm_parameters,
)
from jobs.resources import Resources
from training.launch import run_jobs
from training.manifest import read_manifest, set_status, statuses
from training.spec import Job, LoraSettings

REPO = Path(__file__).resolve().parents[1]


# Module-level task functions: tasks pickle them by reference.
def succeed(marker: str) -> str:
    Path(marker).write_text(str(os.getpid()))
    return "done"


def skip() -> str:
    return "skipped"


def fail(message: str) -> str:
    raise ValueError(message)


def die() -> str:
    os.kill(os.getpid(), signal.SIGKILL)
    return "unreachable"


def test_local_executor_isolates_failures(tmp_path):
    tasks = [
        Task("ok", succeed, (str(tmp_path / "ok.txt"),)),
        Task("boom", fail, ("bad input X",)),
        Task("killed", die),
        Task("cached", skip),
    ]
    summary = run_tasks(tasks, tmp_path, workers=2)
    assert summary.done == ["ok"] and summary.skipped == ["cached"] and not summary.ok
    failed = {result.key: result for result in summary.failed}
    assert failed["boom"].error == "ValueError: bad input X"
    assert "exited with code -9" in failed["killed"].error
    assert Path(failed["boom"].log).read_text().count("bad input X") >= 1  # the traceback is in the log
    assert int((tmp_path / "ok.txt").read_text()) != os.getpid()  # ran in its own process
    text = str(summary)
    assert "failed       2" in text and "FAILED boom: ValueError: bad input X" in text


def test_run_tasks_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="choose one of"):
        run_tasks([Task("a", skip)], tmp_path, executor="kubernetes")
    with pytest.raises(ValueError, match="at least 1"):
        run_tasks([Task("a", skip)], tmp_path, workers=0)


def test_manifest_updates_from_parallel_processes(tmp_path):
    code = (
        "import sys; from training.manifest import set_status\n"
        "for i in range(20): set_status(sys.argv[1], f'{sys.argv[2]}-{i}', 'running')\n"
    )
    children = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path), f"w{w}"], cwd=REPO) for w in range(3)
    ]
    assert all(child.wait() == 0 for child in children)
    assert len(statuses(tmp_path)) == 60  # no lost update
    set_status(tmp_path, "w0-0", "done")
    set_status(tmp_path, ["w0-0", "w0-1"], "pending", keep_finished=True)
    assert statuses(tmp_path)["w0-0"] == "done" and statuses(tmp_path)["w0-1"] == "pending"
    set_status(tmp_path, "w0-1", "failed", error="OOM")
    assert read_manifest(tmp_path)["jobs"]["w0-1"]["error"] == "OOM"
    with pytest.raises(ValueError, match="unknown job status"):
        set_status(tmp_path, "w0-1", "finished")


def _job(base_model: str, **overrides) -> Job:
    fields = dict(
        grid="test",
        base_model=base_model,
        base_model_name="tiny-llama",
        dataset="demo_strings",
        data_size=32,
        method="lora",
        epochs=1,
        lr_schedule="constant",
        learning_rate=3e-3,
        batch_size=16,
        checkpoint_epochs=(1,),
        max_length=48,
        warmup_ratio=0.0,
        lora=LoraSettings(r=4, alpha=8, dropout=0.0),
        resources=Resources(gpus=0, cpus=1, mem_gb=2, time_min=20),
    )
    return Job(**{**fields, **overrides})


@pytest.mark.slow
def test_training_grid_with_a_failing_job_then_skip(tmp_path, tiny_llama):
    good, bad = _job(str(tiny_llama)), _job("local/never-built", base_model_name="never-built")
    summary = run_jobs([bad, good], tmp_path)
    assert summary.done == [good.run_id]
    [failure] = summary.failed
    assert (
        failure.key == bad.run_id
        and "BaseModelError" in failure.error
        and "base_model_build" in failure.error
    )
    manifest = read_manifest(tmp_path)["jobs"]
    assert manifest[good.run_id]["status"] == "done"
    assert manifest[bad.run_id]["status"] == "failed" and "base_model_build" in manifest[bad.run_id]["error"]
    assert (tmp_path / "runs" / good.run_id / "epoch-01" / "adapter_model.safetensors").exists()

    again = run_jobs([good], tmp_path)
    assert again.skipped == [good.run_id] and again.ok
    assert statuses(tmp_path)[good.run_id] == "skipped"


@pytest.mark.slow
def test_slurm_executor_through_submitit_local(tmp_path, tiny_llama):
    job = _job(str(tiny_llama))
    summary = run_jobs([job], tmp_path, executor="slurm", slurm_options=SlurmOptions(cluster="local"))
    assert summary.done == [job.run_id], str(summary)
    record = read_json(tmp_path / "runs" / job.run_id / "epoch-01" / "run.json")
    assert record["metrics"]["global_step"] == 2
    assert statuses(tmp_path)[job.run_id] == "done"
    assert list((tmp_path / "slurm").glob("*/*_result.pkl"))  # went through submitit's job files


def test_slurm_parameters_and_sbatch_script(tmp_path):
    resources = Resources(
        gpus=8, cpus=64, mem_gb=512, time_min=2880, partition="a100", deepspeed_config="zero3.json"
    )
    options = SlurmOptions(
        partition="default", account="proj", array_parallelism=16, setup=("source .venv/bin/activate",)
    )
    parameters = slurm_parameters(resources, options)
    assert parameters["gpus_per_node"] == 8 and parameters["mem"] == "512GB" and parameters["time"] == 2880
    assert parameters["partition"] == "a100"  # the recipe's partition wins over the CLI default
    assert slurm_parameters(Resources(), options)["partition"] == "default"
    script = sbatch_script(resources, options, tmp_path / "%j", array_size=40)
    for line in (
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --cpus-per-task=64",
        "#SBATCH --mem=512GB",
        "#SBATCH --time=2880",
        "#SBATCH --partition=a100",
        "#SBATCH --account=proj",
        "#SBATCH --array=0-39%16",
        "#SBATCH --ntasks-per-node=1",
        "source .venv/bin/activate",
    ):
        assert line in script, f"{line!r} missing from\n{script}"
    assert "submitit.core._submit" in script
    # Slurm may stop a job: it goes back to the queue, warned ahead of its time limit; one log per job.
    for line in ("#SBATCH --requeue", "#SBATCH --signal=USR2@120", "export OMP_NUM_THREADS="):
        assert line in script, f"{line!r} missing from\n{script}"
    assert "#SBATCH --error" not in script


def test_cpu_only_jobs_ask_for_no_gpu_and_slurm_states_read_as_statuses(tmp_path):
    script = sbatch_script(Resources(gpus=0, cpus=1, mem_gb=4), SlurmOptions(), tmp_path / "%j", 2)
    assert "--gpus" not in script and "#SBATCH --cpus-per-task=1" in script
    expected = {
        "PENDING": "queued",
        "REQUEUED": "queued",
        "RUNNING": "running",
        "COMPLETING": "running",
        "COMPLETED": "done",
        "CANCELLED by 0": "failed",
        "TIMEOUT": "failed",
        "NODE_FAIL": "failed",
        "OUT_OF_MEMORY": "failed",
        "": "queued",
    }
    assert {state: job_status(state) for state in expected} == expected


def test_multi_gpu_tasks_launch_through_accelerate_with_deepspeed(tmp_path):
    task_file = tmp_path / "task.pkl"
    single = launch_command(task_file, Resources(gpus=1))
    assert single[1:] == ["-u", "-m", "jobs.worker", str(task_file)]
    command = launch_command(task_file, Resources(gpus=4, deepspeed_config="zero3.json"))
    assert command[1:3] == ["-m", "accelerate.commands.launch"]
    assert command[command.index("--num_processes") + 1] == "4"
    config = Path(command[command.index("--deepspeed_config_file") + 1])
    assert "--use_deepspeed" in command and config == REPO / "configs" / "deepspeed" / "zero3.json"
    assert read_json(config)["zero_optimization"]["stage"] == 3
    assert command[-3:] == ["--module", "jobs.worker", str(task_file)]
    assert "--multi_gpu" in launch_command(task_file, Resources(gpus=2))
    with pytest.raises(FileNotFoundError, match="zero2.json"):
        launch_command(task_file, Resources(gpus=2, deepspeed_config="zero9.json"))
    # The command is one accelerate really parses.
    from accelerate.commands.launch import launch_command_parser

    parsed = launch_command_parser().parse_args(command[3:])
    assert parsed.num_processes == 4 and parsed.use_deepspeed and parsed.module


def test_cli_dry_run_prints_one_array_per_resource_request(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "run",
            "--grid",
            "paper",
            "--root",
            str(tmp_path),
            "--executor",
            "slurm",
            "--slurm-partition",
            "gpu",
            "--dry-run",
            "--only",
            "method=full,dataset=lima",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "#SBATCH --array=0-" in result.stdout and "#SBATCH --gpus-per-node=" in result.stdout
    assert not (tmp_path / "manifest.json").exists()  # nothing submitted


def test_cli_rejects_a_filter_matching_nothing(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "run",
            "--grid",
            "demo",
            "--root",
            str(tmp_path),
            "--only",
            "dataset=nope",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and result.stdout == ""  # errors go to stderr, in one line
    assert "grid 'demo'" in result.stderr and "no job matches 'dataset=nope'" in result.stderr
