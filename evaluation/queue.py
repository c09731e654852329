"""The submissions queue backend (``python -m evaluation queue``): evaluate the models people submitted
through the Space and publish their scores beside the study's.

One pass takes the requests of the requests dataset in submission order (``common.submissions``): each
pending one is claimed (marked ``running`` with this run's random owner id, in a commit made on top of
the head it was chosen from, so two queue runs never take the same request), downloaded (safetensors and
configs only: no pickles, no custom code), evaluated on the suite by the evaluation runner through the
shared executors (``jobs``: a local subprocess, or a Slurm job), published to the results dataset as
``submissions/<request_id>.parquet`` and marked ``finished``, or ``failed`` with the reason. While it
runs, a heartbeat renews ``heartbeat_at``; a running request whose heartbeat is older than
``stale_after_s`` was left by a killed or crashed run and is taken again (its scores so far are kept in
the queue's ``scores.parquet`` and not recomputed), at most ``max_attempts`` times. A request's failure
is recorded and the queue goes on with the next one."""

from __future__ import annotations

import logging
import shutil
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from common.errors import InputError, ServiceError
from common.layout import OutputRoot
from common.schema import read_scores
from common.submissions import (
    FAILED,
    FINISHED,
    PENDING,
    RUNNING,
    Conflict,
    Request,
    RequestsRepo,
    is_stale,
    scrub,
    timestamp,
    utc_now,
)
from evaluation.runner import (
    DEFAULT_EVALUATION_RESOURCES,
    EvalModel,
    EvaluationError,
    RunOptions,
    evaluate_model_task,
)
from evaluation.suites import load_suite
from jobs.executors import SlurmOptions, Task, run_tasks
from jobs.resources import Resources

log = logging.getLogger(__name__)
# What is downloaded of a submitted model: configs, tokenizer files and safetensors weights. Pickled
# weights (*.bin, *.pt) and Python files are never fetched, so nothing a submitter wrote is executed.
MODEL_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "*.jinja"]


@dataclass(frozen=True)
class QueueSettings:
    requests_repo: str
    results_repo: str
    endpoint: str
    root: Path
    suite: str = "demo"
    run: RunOptions = field(default_factory=RunOptions)
    executor: str = "local"
    slurm: SlurmOptions | None = None
    resources: Resources = DEFAULT_EVALUATION_RESOURCES
    heartbeat_s: float = 60.0
    stale_after_s: float = 900.0
    max_attempts: int = 3
    max_requests: int | None = None  # requests to take in this pass (None: until none is left)
    keep_weights: bool = False


@dataclass
class QueueSummary:
    finished: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (request id, reason)
    reclaimed: list[str] = field(default_factory=list)  # running requests a dead run had left
    running_elsewhere: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [
            f"finished {len(self.finished)}, failed {len(self.failed)}, reclaimed from a stopped run "
            f"{len(self.reclaimed)}, running elsewhere {len(self.running_elsewhere)}"
        ]
        lines += [f"  finished {r}" for r in self.finished]
        lines += [f"  FAILED {r}: {reason}" for r, reason in self.failed]
        lines += [f"  running elsewhere {r}" for r in self.running_elsewhere]
        return "\n".join(lines)


class Heartbeat:
    """Renews a running request's ``heartbeat_at`` every ``interval`` seconds on a thread; notices when
    another run has taken the request over (then this run must not record an outcome)."""

    def __init__(self, repo: RequestsRepo, request: Request, owner: str, interval: float) -> None:
        self.repo, self.request_id, self.owner, self.interval = repo, request.request_id, owner, interval
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{self.request_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self, current: Request) -> Request | None:
        if current.owner != self.owner or current.status != RUNNING:
            self.lost.set()
            return None
        return current.moved(RUNNING, utc_now(), heartbeat_at=timestamp(utc_now()))

    def _run(self) -> None:
        while not self._stop.wait(self.interval) and not self.lost.is_set():
            try:
                self.repo.update(self.request_id, self._beat, f"Heartbeat of request {self.request_id}")
            except Exception as error:  # a missed beat is retried at the next one; the work goes on
                log.warning("heartbeat of %s failed: %s", self.request_id, error)


def claim_next(
    repo: RequestsRepo, owner: str, settings: QueueSettings, summary: QueueSummary
) -> Request | None:
    """The first pending (or stale running) request, marked running by ``owner``; None when none is
    left. A stale request that has been started ``max_attempts`` times is marked failed instead."""
    conflicts = 0
    while conflicts < 20:
        head, requests = repo.read()
        now = utc_now()
        summary.running_elsewhere = [
            r.request_id
            for r in requests
            if r.status == RUNNING and r.owner != owner and not is_stale(r, now, settings.stale_after_s)
        ]
        chosen = next(
            (r for r in requests if r.status == PENDING or is_stale(r, now, settings.stale_after_s)), None
        )
        if chosen is None:
            return None
        if chosen.status == RUNNING and chosen.attempts >= settings.max_attempts:
            reason = (
                f"the evaluation stopped {chosen.attempts} times without finishing (killed, crashed or "
                "out of memory); check the model and submit it again"
            )
            changed = chosen.moved(FAILED, now, error=reason)
        else:
            started = timestamp(now)
            changed = chosen.moved(
                RUNNING,
                now,
                owner=owner,
                attempts=chosen.attempts + 1,
                started_at=started,
                heartbeat_at=started,
            )
        try:
            repo.write(changed, head, f"{changed.status.capitalize()} request {chosen.request_id}")
        except Conflict:
            conflicts += 1
            continue  # another run moved the queue: choose again from the new head
        if changed.status == FAILED:
            summary.failed.append((chosen.request_id, changed.error or ""))
            continue
        if chosen.status == RUNNING:
            summary.reclaimed.append(chosen.request_id)
        return changed
    raise ServiceError(f"{repo.repo_id} kept changing while a request was claimed; run the queue again")


def download_model(request: Request, folder: Path, endpoint: str) -> EvalModel:
    """The submitted model at its commit (read without a token, as the Space checked it), and an
    adapter's base model (with the queue's token: a base may be gated)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        model_dir = snapshot_download(
            request.repo_id,
            revision=request.commit,
            local_dir=folder / "model",
            allow_patterns=MODEL_FILES,
            endpoint=endpoint,
            token=False,
        )
    except RevisionNotFoundError:
        raise InputError(
            f"commit {request.commit[:12]} is no longer in {request.repo_id} (the branch was rewritten "
            "since it was submitted): submit the model again"
        ) from None
    except RepositoryNotFoundError:
        raise InputError(
            f"model repo {request.repo_id} was not found: it was deleted or made private after it was "
            "submitted; make it public and submit it again"
        ) from None
    base_path = None
    if request.weights == "adapter":
        try:
            base_path = snapshot_download(request.base_model, allow_patterns=MODEL_FILES, endpoint=endpoint)
        except RepositoryNotFoundError:
            raise InputError(f"the base model {request.base_model} of this adapter cannot be read") from None
    return EvalModel(request.model_id, str(model_dir), request.identity(), base_path=base_path)


def evaluate(model: EvalModel, settings: QueueSettings) -> pd.DataFrame:
    """The model's score rows, evaluated by the runner in an executor task (one crash or kill of the
    task is a failed request, not a dead queue); resumes from the rows a stopped run left."""
    suite = load_suite(settings.suite)
    root = OutputRoot(settings.root)
    task = Task(
        f"submission-{model.model_id.replace('/', '-')}",
        evaluate_model_task,
        (str(root), str(suite.path), model, settings.run),
        settings.resources,
    )
    summary = run_tasks([task], root.eval_work_dir, settings.executor, 1, settings.slurm)
    if summary.failed:
        raise EvaluationError(summary.failed[0].error or "the evaluation task failed")
    scores = read_scores(root.scores)
    rows = scores[scores["model_id"] == model.model_id]
    wanted = {(e.benchmark, e.shots) for e in suite.lm_entries}
    if {(b, int(s)) for b, s in zip(rows["benchmark"], rows["shots"], strict=True)} < wanted:
        raise EvaluationError("the evaluation ended without a score for every benchmark of the suite")
    return rows


def publish(request: Request, rows: pd.DataFrame, settings: QueueSettings) -> None:
    """``submissions/<request_id>.parquet`` in the results dataset: the long scores, with the model's
    repo and commit as ``model_path`` (never the queue's local folder)."""
    from huggingface_hub import HfApi

    rows = rows.assign(model_path=f"{request.repo_id}@{request.commit}")
    HfApi(endpoint=settings.endpoint).upload_file(
        path_or_fileobj=rows.to_parquet(index=False),
        path_in_repo=request.results_path,
        repo_id=settings.results_repo,
        repo_type="dataset",
        commit_message=f"Scores of submission {request.repo_id} (request {request.request_id})",
    )


def process(
    request: Request, repo: RequestsRepo, owner: str, settings: QueueSettings
) -> tuple[str, str | None]:
    """Evaluate and publish one claimed request; (status recorded, failure reason). Never raises for
    the request's own failure."""
    folder = OutputRoot(settings.root).submission_dir(request.request_id)
    status, reason = FINISHED, None
    with Heartbeat(repo, request, owner, settings.heartbeat_s) as heartbeat:
        try:
            model = download_model(request, folder, settings.endpoint)
            publish(request, evaluate(model, settings), settings)
        except Exception as error:  # the request failed; the queue goes on with the next one
            log.info("request %s failed", request.request_id, exc_info=True)
            status, reason = FAILED, failure_reason(error, settings.root)
        finally:
            if not settings.keep_weights:
                shutil.rmtree(folder, ignore_errors=True)
    if heartbeat.lost.is_set():
        return RUNNING, "another queue run took this request over; it records the outcome"
    try:
        repo.update(
            request.request_id,
            _finish(owner, status, reason),
            f"{status.capitalize()} request {request.request_id}",
        )
    except Exception as error:  # the Hub is down: the request stays running and is taken again later
        raise ServiceError(
            f"could not record that request {request.request_id} {status} in {repo.repo_id} "
            f"({type(error).__name__}: {scrub(str(error))}); it stays running and the next queue run takes "
            "it again once --stale-after has passed (its scores are kept)"
        ) from None
    return status, reason


def _finish(owner: str, status: str, reason: str | None) -> Callable[[Request], Request | None]:
    def change(current: Request) -> Request | None:
        if current.owner != owner or current.status != RUNNING:
            return None  # taken over meanwhile: that run records the outcome
        return current.moved(status, utc_now(), error=reason)

    return change


def failure_reason(error: BaseException, root: Path) -> str:
    """One line for the public request file: what failed, without local paths, addresses or tokens."""
    text = " ".join(str(error).split()) or type(error).__name__
    for folder in {str(root), str(Path(root).resolve())}:
        text = text.replace(folder, "<work>")
    return scrub(f"{type(error).__name__}: {text}" if not isinstance(error, InputError) else text)


def check_results_repo(settings: QueueSettings) -> None:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        HfApi(endpoint=settings.endpoint).repo_info(settings.results_repo, repo_type="dataset")
    except RepositoryNotFoundError:
        raise InputError(
            f"results dataset {settings.results_repo} not found on {settings.endpoint}: publish the "
            "study's results first (python -m release publish) or pass --results REPO (with HF_TOKEN "
            "set when it is private)"
        ) from None
    except Exception as error:  # unreachable endpoint, refused token...
        raise ServiceError(
            f"could not reach the results dataset {settings.results_repo} on {settings.endpoint} "
            f"({type(error).__name__}): check --endpoint / HF_ENDPOINT and HF_TOKEN"
        ) from None


def run_queue(settings: QueueSettings) -> QueueSummary:
    """One pass over the queue: every pending (and stale running) request, in submission order."""
    check_results_repo(settings)
    load_suite(settings.suite)  # a bad --suite is the maintainer's mistake, not each request's failure
    repo = RequestsRepo(settings.requests_repo, settings.endpoint)
    owner = uuid.uuid4().hex[:12]
    summary = QueueSummary()
    taken = 0
    while settings.max_requests is None or taken < settings.max_requests:
        try:
            request = claim_next(repo, owner, settings, summary)
        except ServiceError:
            raise
        except Exception as error:  # the Hub refused or cannot be reached
            raise ServiceError(
                f"could not read or claim the requests of {repo.repo_id} on {settings.endpoint} "
                f"({type(error).__name__}: {scrub(str(error))}): check the repo id and HF_TOKEN (write access)"
            ) from None
        if request is None:
            break
        taken += 1
        print(
            f"[queue] running {request.request_id}: {request.repo_id}@{request.revision} "
            f"(attempt {request.attempts})",
            flush=True,
        )
        status, reason = process(request, repo, owner, settings)
        print(f"[queue] {status} {request.request_id}" + (f": {reason}" if reason else ""), flush=True)
        if status == FINISHED:
            summary.finished.append(request.request_id)
        elif status == FAILED:
            summary.failed.append((request.request_id, reason or ""))
    return summary
