"""``--executor slurm`` against a real Slurm cluster (scripts/slurm-local.sh): the demo grid through job
arrays with sacct's record of them, a job that Slurm requeues and one that is scancelled resuming to the
same kept epochs as an uninterrupted run, and evaluation through Slurm scoring like the local executor."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.io import read_json
from common.schema import read_scores

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
STATUS_LINE = re.compile(r"^\[slurm\] (\w+)\s+(\S+) \(job (\S+), log (\S+)\)", re.MULTILINE)
# One thread per process in every run compared here: float sums then add up in the same order.
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
DEMO_JOBS = "base_model_name=tiny-llama,dataset=demo_facts"  # one full and one LoRA job
SMALL_SUITE = """name: slurm-check
prepare: demo
entries:
  - {benchmark: demo_facts, task: demo_facts_mc, shots: 0, metric: acc, limit: 12}
  - {benchmark: demo_facts_gen, task: demo_facts_gen, shots: 0, metric: exact_match, limit: 6}
"""
# Long enough for the test to interrupt it twice between checkpoints: 8 epochs of 100 steps of a model
# big enough that the epochs after the first take well over the KillWait (2 s, scripts/slurm-local.sh)
# that a killed job keeps running for, since submitit ignores SIGTERM; with the demo's tiny model an idle
# machine finished all 8 epochs in that window, and the requeued job then had nothing to resume.
RESUME_GRID = """name: slurm-resume
defaults: {seed: 0, max_length: 64, warmup_ratio: 0.0, weight_decay: 0.0, template: paper, loss_on: response}
methods:
  full: {learning_rate: 3.0e-3, batch_size: 2}
resources: {gpus: 0, cpus: 1, mem_gb: 4, time_min: 30}
models:
  - name: tiny-llama
    build: {architecture: llama, hidden_size: 256, num_layers: 4, vocab_size: 512, seed: 0}
blocks:
  - name: resume
    models: all
    datasets: [demo_facts]
    data_sizes: [200]
    methods: [full]
    lr_schedule: cosine
    epochs: 8
    keep: [4, 8]
"""


def cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout
    )


def train_command(grid: str, root: Path, *extra: str) -> list[str]:
    command = ["training", "run", "--grid", grid, "--root", str(root), "--executor", "slurm"]
    return [*command, "--slurm-poll", "1", *extra]


def statuses(output: str) -> dict[str, list[tuple[str, str, str]]]:
    """run key -> the (status, job id, log) lines printed for it, in order."""
    found: dict[str, list[tuple[str, str, str]]] = {}
    for status, key, job_id, log in STATUS_LINE.findall(output):
        found.setdefault(key, []).append((status, job_id, log))
    return found


def sacct_states(job_ids: list[str]) -> dict[str, str]:
    ids = sorted({job_id.split("_")[0] for job_id in job_ids})
    output = subprocess.run(
        [
            "sacct",
            "--noheader",
            "--parsable2",
            "--allocations",
            "--format=JobID,State",
            "--jobs",
            ",".join(ids),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("|") for line in output.splitlines() if line)


def final_states(job_ids: list[str]) -> dict[str, str]:
    """sacct's states once every job has ended (a job's result exists a moment before Slurm ends it)."""

    def ended() -> dict[str, str] | None:
        states = sacct_states(job_ids)
        return (
            states
            if all(states.get(job_id) not in (None, "RUNNING", "COMPLETING") for job_id in job_ids)
            else None
        )

    return wait_for(ended, f"Slurm to end jobs {job_ids}", timeout_s=120, every_s=1)


def wait_for(condition, what: str, timeout_s: float = 600, every_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


@pytest.fixture(scope="module")
def demo_grid(slurm_cluster, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("slurm-demo") / "root"
    result = cli(*train_command("demo", root), "--only", DEMO_JOBS)
    return root, result


def test_demo_grid_runs_as_a_job_array_that_sacct_records_completed(demo_grid):
    root, result = demo_grid
    assert result.returncode == 0, result.stdout + result.stderr
    lines = statuses(result.stdout)
    runs = sorted(path.name for path in (root / "runs").iterdir())
    assert sorted(lines) == runs and len(runs) == 2
    final = {key: seen[-1] for key, seen in lines.items()}
    assert {status for status, _, _ in final.values()} == {"done"}
    assert all(seen[0][0] in ("queued", "running") for seen in lines.values())  # seen before it ended
    job_ids = [job_id for _, job_id, _ in final.values()]
    assert len({job_id.split("_")[0] for job_id in job_ids}) == 1  # one array for one resource request
    states = final_states(job_ids)
    assert all(states[job_id] == "COMPLETED" for job_id in job_ids), states
    for _, _, log in final.values():  # one log per job, under the output root
        assert Path(log).is_relative_to(root) and "Job completed successfully" in Path(log).read_text()
    assert {status["status"] for status in read_json(root / "manifest.json")["jobs"].values()} == {"done"}


def test_kept_epochs_trained_on_slurm_load(demo_grid):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    root, _ = demo_grid
    for run in sorted((root / "runs").iterdir()):
        for epoch in ("epoch-02", "epoch-04"):
            folder = run / epoch
            record = read_json(folder / "run.json")
            if record["job"]["method"] == "lora":
                base = AutoModelForCausalLM.from_pretrained(record["base_model_path"])
                model = PeftModel.from_pretrained(base, folder)
            else:
                model = AutoModelForCausalLM.from_pretrained(folder)
            assert model.num_parameters() > 0 and record["metrics"]["global_step"] > 0


def _checkpoint_steps(root: Path) -> list[int]:
    found = root.glob("runs/*/trainer/checkpoint-*/trainer_state.json")
    return sorted(int(path.parent.name.rsplit("-", 1)[1]) for path in found)


def _running_job(output: Path) -> str | None:
    running = [
        job_id for status, _, job_id, _ in STATUS_LINE.findall(output.read_text()) if status == "running"
    ]
    return running[-1] if running else None


def _log_of(output: Path) -> str | None:
    lines = STATUS_LINE.findall(output.read_text())
    return lines[-1][3] if lines else None


def _resumed_or_finished(log: Path, root: Path) -> bool:
    return "resuming from" in log.read_text() or any(root.glob("runs/*/epoch-08/run.json"))


def test_requeued_and_cancelled_job_resumes_to_the_same_kept_epochs(slurm_cluster, tmp_path):
    grid = tmp_path / "resume.yaml"
    grid.write_text(RESUME_GRID)
    reference_root, root = tmp_path / "uninterrupted", tmp_path / "interrupted"
    reference = subprocess.Popen(
        [sys.executable, "-m", *train_command(str(grid), reference_root)],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    output = tmp_path / "interrupted.out"
    with open(output, "w") as sink:
        first = subprocess.Popen(
            [sys.executable, "-m", *train_command(str(grid), root)],
            cwd=REPO,
            env=ENV,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        # 1. Slurm takes the node away (what preemption with PreemptMode=REQUEUE and a failed node do):
        # the job goes back to the queue, starts again by itself and resumes from its checkpoint.
        wait_for(lambda: _checkpoint_steps(root), "the first epoch's checkpoint")
        job_id = wait_for(lambda: _running_job(output), "the running status line")
        subprocess.run(["scontrol", "requeue", job_id], check=True, capture_output=True)
        log = Path(wait_for(lambda: _log_of(output), "the job's log"))
        wait_for(lambda: _resumed_or_finished(log, root), "the requeued job to start again and resume")
        assert not any(root.glob("runs/*/epoch-08/run.json")), "it finished before Slurm killed it"
        before = _checkpoint_steps(root)[-1]
        # 2. Once it has saved a later epoch, a user cancels it: this run of the command fails.
        wait_for(lambda: _checkpoint_steps(root)[-1] > before, "a checkpoint after the requeue", every_s=0.05)
        subprocess.run(["scancel", job_id], check=True)
        assert first.wait(timeout=600) == 1
    text = output.read_text()
    status, key, failed_id, log = STATUS_LINE.findall(text)[-1]
    assert (status, failed_id) == ("failed", job_id) and "CANCELLED" in text and Path(log).exists()
    run_folder = root / "runs" / key
    assert not (run_folder / "epoch-08" / "run.json").exists()  # it was stopped before the end
    assert final_states([job_id])[job_id].startswith("CANCELLED")
    log_text = Path(log).read_text()
    assert log_text.count("Starting with JobEnvironment") == 2 and "resuming from" in log_text

    # 3. The next run resumes it from the last checkpoint instead of starting over.
    again = cli(*train_command(str(grid), root))
    assert again.returncode == 0, again.stdout + again.stderr
    [(_, _, new_log)] = [line for line in statuses(again.stdout)[key] if line[0] == "done"]
    assert "resuming from" in Path(new_log).read_text()
    assert reference.wait(timeout=600) == 0
    for epoch in ("epoch-04", "epoch-08"):
        resumed, uninterrupted = run_folder / epoch, reference_root / "runs" / key / epoch
        assert (resumed / "model.safetensors").read_bytes() == (
            uninterrupted / "model.safetensors"
        ).read_bytes()
        metrics, expected = (
            read_json(resumed / "run.json")["metrics"],
            read_json(uninterrupted / "run.json")["metrics"],
        )
        assert metrics["train_loss_per_epoch"] == expected["train_loss_per_epoch"]
        assert metrics["global_step"] == expected["global_step"]


def _values(root: Path) -> dict[tuple[str, str], float]:
    scores = read_scores(root / "scores.parquet")
    return {
        (m, b): v for m, b, v in zip(scores["model_id"], scores["benchmark"], scores["value"], strict=True)
    }


def test_evaluation_on_slurm_scores_like_the_local_executor(demo_grid, tmp_path):
    root, trained = demo_grid
    assert trained.returncode == 0, trained.stdout + trained.stderr
    suite = tmp_path / "suite.yaml"
    suite.write_text(SMALL_SUITE)
    local_root = tmp_path / "local"
    shutil.copytree(root, local_root, ignore=shutil.ignore_patterns("slurm", "scores.parquet", "eval_*"))
    evaluate = ("evaluation", "run", "--suite", str(suite), "--only", "method=full")
    on_slurm = cli(*evaluate, "--root", str(root), "--executor", "slurm", "--slurm-poll", "1")
    assert on_slurm.returncode == 0, on_slurm.stdout + on_slurm.stderr
    lines = statuses(on_slurm.stdout)
    assert len(lines) == 3 and all(seen[-1][0] == "done" for seen in lines.values())  # base + 2 epochs
    states = final_states([seen[-1][1] for seen in lines.values()])
    assert set(states.values()) == {"COMPLETED"}
    local = cli(*evaluate, "--root", str(local_root))
    assert local.returncode == 0, local.stdout + local.stderr
    slurm_values, local_values = _values(root), _values(local_root)
    assert len(slurm_values) == 6 and slurm_values == local_values
