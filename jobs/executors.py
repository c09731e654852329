"""Run many independent tasks, locally or on Slurm, so that one failure never takes the others down.

Generic layer (reusable by any stage, e.g. evaluation):

* a :class:`Task` is a picklable module-level callable + arguments + :class:`~jobs.resources.Resources`;
  the callable returns ``"done"`` or ``"skipped"`` (anything else counts as done) or raises;
* :func:`run_tasks` runs them with the ``local`` executor (one subprocess per task, ``workers`` at a
  time, one GPU per worker when GPUs exist) or the ``slurm`` executor (submitit job arrays, one array per
  distinct resource request; ``cluster="local"`` runs the same path through submitit's local executor),
  printing a status line per job and state change; Slurm jobs are requeued when preempted or near their
  time limit (:class:`SlurmEntry`), and a task restarts from what it saved;
* tasks asking for more than one GPU are launched with ``accelerate launch`` (DeepSpeed ZeRO when
  ``resources.deepspeed_config`` names a file of ``configs/deepspeed/``), every rank running the task.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import pickle
import queue
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit
from tqdm.auto import tqdm

from common.io import read_json, write_bytes
from common.paths import configs_dir
from jobs.resources import Resources

EXECUTORS = ("local", "slurm")
SLURM_CLUSTERS = ("slurm", "local")


@dataclass(frozen=True)
class Task:
    key: str  # unique, used for file names and the summary (a run_id for training)
    fn: Callable[..., Any]  # module-level, so it pickles by reference
    args: tuple[Any, ...] = ()
    resources: Resources = field(default_factory=Resources)


@dataclass(frozen=True)
class TaskResult:
    key: str
    status: str  # "done" | "skipped" | "failed"
    error: str | None = None
    log: str | None = None


@dataclass
class RunSummary:
    results: list[TaskResult]

    def keys(self, status: str) -> list[str]:
        return [result.key for result in self.results if result.status == status]

    @property
    def done(self) -> list[str]:
        return self.keys("done")

    @property
    def skipped(self) -> list[str]:
        return self.keys("skipped")

    @property
    def failed(self) -> list[TaskResult]:
        return [result for result in self.results if result.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def __str__(self) -> str:
        lines = [
            f"{'status':<8} {'count':>5}",
            f"{'done':<8} {len(self.done):>5}",
            f"{'skipped':<8} {len(self.skipped):>5}",
            f"{'failed':<8} {len(self.failed):>5}",
        ]
        for result in self.failed:
            lines.append(
                f"FAILED {result.key}: {result.error}" + (f" (log: {result.log})" if result.log else "")
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class SlurmOptions:
    partition: str | None = None  # used when a job's resources name no partition
    account: str | None = None
    qos: str | None = None
    array_parallelism: int = 64
    cluster: str = "slurm"  # "local": the same submitit path on this machine (tests, debugging)
    setup: tuple[str, ...] = ()  # shell lines run before each task (module load, conda activate)
    folder: str | None = None  # submitit logs and pickles; default <work_dir>/slurm
    poll_s: float = 10.0  # seconds between two looks at the jobs' states (one sacct call)


# ---------------------------------------------------------------- running one task (in the worker process)


def run_task(task: Task) -> str:
    outcome = task.fn(*task.args)
    return outcome if outcome in ("done", "skipped") else "done"


def launch_command(task_file: Path, resources: Resources) -> list[str]:
    """The command running a pickled task: plain Python, or ``accelerate launch`` for multi-GPU tasks."""
    worker = ["-m", "jobs.worker", str(task_file)]
    if resources.gpus <= 1:
        return [sys.executable, "-u", *worker]
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        str(resources.gpus),
        "--num_machines",
        "1",
        "--mixed_precision",
        "bf16",
    ]
    if resources.deepspeed_config:
        config = configs_dir() / "deepspeed" / resources.deepspeed_config
        if not config.is_file():
            raise FileNotFoundError(
                f"DeepSpeed config {config} not found; resources.deepspeed_config must name a "
                f"file of {config.parent} ({sorted(p.name for p in config.parent.glob('*.json'))})"
            )
        command += ["--use_deepspeed", "--deepspeed_config_file", str(config)]
    else:
        command += ["--multi_gpu"]
    return command + ["--module", "jobs.worker", str(task_file)]


def _write_task(task: Task, work_dir: Path) -> Path:
    path = work_dir / "tasks" / f"{task.key.replace('/', '-')}.pkl"
    write_bytes(path, pickle.dumps(task))
    return path


def _result_file(task_file: Path) -> Path:
    return task_file.with_suffix(".result.json")


def _thread_env(resources: Resources, workers: int) -> dict[str, str]:
    """Intra-op threads of one local worker: the job's CPU request, within its share of this machine.
    Oversubscribed threads make small models many times slower; a user's OMP_NUM_THREADS wins."""
    if "OMP_NUM_THREADS" in os.environ:
        return {}
    share = max(1, (os.cpu_count() or 1) // workers)
    return {"OMP_NUM_THREADS": str(max(1, min(resources.cpus, share)))}


def die_with_parent(parent: int) -> None:
    """In a worker (preexec_fn, or its own start): SIGKILL when the thread that started it ends (its
    parent was killed), so a killed ``run`` never leaves workers writing while a re-run starts the same
    tasks. ``parent`` is the pid expected as parent: gone already, the worker exits at once."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _run_subprocess(task: Task, work_dir: Path, env: dict[str, str]) -> TaskResult:
    task_file = _write_task(task, work_dir)
    result_file = _result_file(task_file)
    result_file.unlink(missing_ok=True)
    log_path = work_dir / "logs" / f"{task_file.stem}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        command = launch_command(task_file, task.resources)
    except FileNotFoundError as error:
        return TaskResult(task.key, "failed", str(error))
    # The worker must import the task's callable from wherever the parent could (tests, scripts).
    python_path = os.pathsep.join([p for p in sys.path if p] + [os.environ.get("PYTHONPATH", "")])
    # Appended, never truncated: a file truncated under a process still writing to it fills with NULs.
    with open(log_path, "a") as log:
        code = subprocess.run(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": python_path, **env},
            preexec_fn=functools.partial(die_with_parent, os.getpid()),
        ).returncode
    if result_file.exists():
        result = read_json(result_file)
        return TaskResult(task.key, result["status"], result.get("error"), str(log_path))
    return TaskResult(
        task.key,
        "failed",
        f"worker exited with code {code} before reporting a result (killed, out of memory, or crashed)",
        str(log_path),
    )


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def _run_local(tasks: Sequence[Task], work_dir: Path, workers: int) -> list[TaskResult]:
    """Each task in its own process; with GPUs and several workers, each worker owns one GPU."""
    gpus = _gpu_count()
    slots: queue.Queue[dict[str, str]] = queue.Queue()
    for slot in range(workers):
        slots.put({"CUDA_VISIBLE_DEVICES": str(slot % gpus)} if gpus and workers > 1 else {})

    def run(task: Task) -> TaskResult:
        env = slots.get()
        try:
            return _run_subprocess(task, work_dir, {**_thread_env(task.resources, workers), **env})
        finally:
            slots.put(env)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run, task) for task in tasks]
        return [future.result() for future in tqdm(futures, desc="tasks", unit="task")]


# ---------------------------------------------------------------- Slurm (submitit)

# Slurm job states (sacct's State column, submitit's local executor's) as the status a user reads.
_QUEUED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "RESIZING", "SUSPENDED"}
_QUEUED |= {"UNKNOWN", "READY", "PREEMPTED"}  # PREEMPTED: requeued next (sbatch --requeue)
_RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"}
_DONE = {"COMPLETED", "FINISHED"}
# Before the time limit (and on preemption) Slurm signals the job this long ahead, so submitit can requeue it.
SIGNAL_DELAY_S = 120


def job_status(state: str) -> str:
    """``queued``, ``running``, ``done`` or ``failed`` for a Slurm state such as ``CANCELLED by 0``."""
    name = state.split()[0].upper() if state.strip() else "UNKNOWN"
    if name in _QUEUED:
        return "queued"
    if name in _RUNNING:
        return "running"
    return "done" if name in _DONE else "failed"


def slurm_parameters(
    resources: Resources, options: SlurmOptions, name: str = "massive-sft"
) -> dict[str, Any]:
    """sbatch parameters (submitit ``SlurmExecutor`` names) for one resource request."""
    parameters: dict[str, Any] = {
        "job_name": name,
        "time": resources.time_min,
        "nodes": 1,
        "ntasks_per_node": 1,
        "cpus_per_task": resources.cpus,
        "mem": f"{resources.mem_gb}GB",
        "array_parallelism": options.array_parallelism,
        "signal_delay_s": SIGNAL_DELAY_S,
        "stderr_to_stdout": True,  # one log per job
        # A preempted job (or one on a failed node) goes back to the queue, even where JobRequeue=0.
        "additional_parameters": {"requeue": True},
        # Torch would start one thread per core of the node: as many as the job asked for instead.
        "setup": ["export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$SLURM_CPUS_PER_TASK}", *options.setup],
    }
    optional = {
        "gpus_per_node": resources.gpus or None,  # none on CPU-only partitions, which may lack GRES
        "partition": resources.partition or options.partition,
        "account": options.account,
        "qos": options.qos,
    }
    parameters.update({key: value for key, value in optional.items() if value is not None})
    return parameters


def sbatch_script(resources: Resources, options: SlurmOptions, folder: str | Path, array_size: int) -> str:
    """The sbatch file submitit would submit for an array of ``array_size`` tasks (for review and tests)."""
    from submitit.slurm.slurm import _make_sbatch_string

    command = f"{sys.executable} -u -m submitit.core._submit {folder}"
    return _make_sbatch_string(
        command=command, folder=folder, map_count=array_size, **slurm_parameters(resources, options)
    )


class SlurmEntry:
    """What a Slurm array task runs: the task itself, or ``accelerate launch`` over the node's GPUs.

    Before a time limit, and when the job is preempted, Slurm signals it; submitit then calls
    :meth:`checkpoint` and requeues the job, which runs the same task again. Tasks are resumable (training
    restarts from its last Trainer checkpoint, evaluation skips the scores it already wrote), so nothing
    more than the task is saved here."""

    def __call__(self, task: Task) -> str:
        # The job's log shows the task's progress (e.g. training's "resuming from ...").
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if task.resources.gpus <= 1:
            return run_task(task)
        job_folder = submitit.JobEnvironment().paths.folder
        task_file = _write_task(task, job_folder)
        subprocess.run(launch_command(task_file, task.resources), check=True)
        return read_json(_result_file(task_file))["status"]

    def checkpoint(self, task: Task) -> submitit.helpers.DelayedSubmission:
        return submitit.helpers.DelayedSubmission(self, task)


def _slurm_executor(options: SlurmOptions, folder: Path, resources: Resources):
    if options.cluster == "slurm":
        executor = submitit.SlurmExecutor(folder=folder)
        executor.update_parameters(**slurm_parameters(resources, options))
        return executor
    if options.cluster == "local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(
            timeout_min=resources.time_min, gpus_per_node=min(resources.gpus, _gpu_count())
        )
        return executor
    raise ValueError(f"unknown Slurm cluster {options.cluster!r}; choose one of {list(SLURM_CLUSTERS)}")


@dataclass
class _SlurmTask:
    task: Task
    job: submitit.Job
    shown: str = ""  # the status line printed last

    @property
    def log(self) -> str:
        return str(self.job.paths.stdout)

    def show(self, status: str, detail: str = "") -> None:
        line = f"[slurm] {status:<7} {self.task.key} (job {self.job.job_id}, log {self.log})"
        if line != self.shown:
            print(line + (f": {detail}" if detail else ""), flush=True)
            self.shown = line

    def outcome(self) -> TaskResult:
        try:
            status = self.job.result()
        except submitit.core.utils.UncompletedJobError:  # no result: Slurm ended the job
            state = self.job.state
            error = (
                f"Slurm job {self.job.job_id} ended {state} before the task reported a result "
                "(time limit, scancel, node failure or out of memory); run again to resume it"
            )
            return TaskResult(self.task.key, "failed", error, self.log)
        except Exception as error:  # the task raised: submitit re-raises it with its traceback
            message = str(error).strip().splitlines()
            return TaskResult(self.task.key, "failed", message[-1] if message else repr(error), self.log)
        return TaskResult(self.task.key, status, log=self.log)


def _known_to_slurm(watched: Sequence[_SlurmTask]) -> set[str] | None:
    """Job ids the controller still holds (squeue), or None when that cannot be told."""
    ids = sorted(
        {item.job.job_id.split("_")[0] for item in watched if isinstance(item.job, submitit.SlurmJob)}
    )
    if not ids:
        return None
    command = ["squeue", "--noheader", "--array", "--states=all", "--format=%i", "--jobs", ",".join(ids)]
    listed = subprocess.run(command, capture_output=True, text=True)
    if listed.returncode != 0:
        return set() if "Invalid job id" in listed.stderr else None
    return set(listed.stdout.split())


def _watch(watched: Sequence[_SlurmTask], poll_s: float) -> list[TaskResult]:
    """Print a status line whenever a job changes state, until every job has ended."""
    results: dict[str, TaskResult] = {}
    # Polls in a row a job was missing from the controller while sacct still had it queued or running:
    # Slurm does not record a cancel of a requeued job that waits to start again.
    missing: dict[str, int] = {}
    while len(results) < len(watched):
        running = [item for item in watched if item.task.key not in results]
        running[0].job.get_info(mode="force")  # one sacct call refreshes every job of this run
        known = _known_to_slurm(running)
        for item in running:
            if item.job.done():
                result = results[item.task.key] = item.outcome()
                item.show(result.status, result.error or "")
                continue
            status = job_status(item.job.state)
            gone = known is not None and item.job.job_id not in known
            missing[item.task.key] = missing.get(item.task.key, 0) + 1 if gone else 0
            if missing[item.task.key] >= 2:
                error = (
                    f"Slurm no longer holds job {item.job.job_id} (last state {item.job.state}): it was "
                    "cancelled while queued; run again to resume it"
                )
                results[item.task.key] = TaskResult(item.task.key, "failed", error, item.log)
                item.show("failed", error)
            else:
                item.show(status)
        if len(results) < len(watched):
            time.sleep(poll_s)
    return [results[item.task.key] for item in watched]


def _run_slurm(tasks: Sequence[Task], work_dir: Path, options: SlurmOptions) -> list[TaskResult]:
    folder = Path(options.folder) if options.folder else work_dir / "slurm"
    groups: dict[Resources, list[Task]] = {}
    for task in tasks:
        groups.setdefault(task.resources, []).append(task)
    watched = []
    for resources, group in groups.items():  # one job array per distinct resource request
        executor = _slurm_executor(options, folder / "%j", resources)
        jobs = executor.map_array(SlurmEntry(), group)
        watched += [_SlurmTask(task, job) for task, job in zip(group, jobs, strict=True)]
    return _watch(watched, options.poll_s)


def run_tasks(
    tasks: Sequence[Task],
    work_dir: str | Path,
    executor: str = "local",
    workers: int = 1,
    slurm_options: SlurmOptions | None = None,
) -> RunSummary:
    """Run every task; failures are collected in the summary, never raised."""
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of {list(EXECUTORS)}")
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, not {workers}")
    keys = [task.key for task in tasks]
    if len(set(keys)) != len(keys):
        raise ValueError("task keys must be unique")
    work_dir = Path(work_dir)
    if not tasks:
        return RunSummary([])
    if executor == "local":
        return RunSummary(_run_local(tasks, work_dir, workers))
    return RunSummary(_run_slurm(tasks, work_dir, slurm_options or SlurmOptions()))
