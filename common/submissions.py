"""Submissions: a model someone asks to have evaluated beside the study's (docs/space.md, "Submit").

The one definition of what crosses the Space and the queue backend:

* the **requests dataset** (a Hub dataset repo): one JSON file per request, ``requests/<request_id>.json``
  (:class:`Request`), written ``pending`` by the Space (``space/submit.py``) and moved to ``running``,
  ``finished`` or ``failed`` by ``python -m evaluation queue`` (``evaluation/queue.py``). Every change is
  one commit made against the head it was decided on (``parent_commit``), so two writers never
  overwrite each other: the second one re-reads and decides again;
* the **submission scores** in the results dataset: ``submissions/<request_id>.parquet``, the long
  scores table (``common.schema``) of the submitted model, its ``model_path`` ``<repo_id>@<commit>``.
  The Space shows them beside the study's rows, marked as submissions.

A request holds what the submitter typed (contact included) and what the Space resolved (the commit);
never a token, an address or a local path (:func:`scrub` cleans the failure reasons the queue records)."""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, fields, replace
from datetime import datetime, timezone
from typing import Any

from common.errors import InputError, ServiceError

log = logging.getLogger(__name__)

REQUESTS_DIR = "requests"
SUBMISSIONS_DIR = "submissions"
PENDING, RUNNING, FINISHED, FAILED = "pending", "running", "finished", "failed"
STATUSES = (PENDING, RUNNING, FINISHED, FAILED)
# A new request for a model (repo and commit) that has one of these is a duplicate; a failed one may be
# submitted again.
ACTIVE = (PENDING, RUNNING, FINISHED)
WEIGHTS = ("full", "adapter")
SFT_METHODS = ("full", "lora")
SCHEMA_VERSION = 1
_REQUEST_ID = re.compile(r"^[0-9]{8}T[0-9]{9}Z-[0-9a-f]{8}$")
_TOKEN = re.compile(r"\b(hf_|api_org_)[A-Za-z0-9]{16,}")
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.])/(?:[\w.@+-]+/)+[\w.@+-]*")
_ADDRESS = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b|\blocalhost(?::\d+)?\b")
MAX_TEXT = 500  # longest free text stored (contact, dataset, failure reason)


class RequestsRepoError(ServiceError):
    """The requests dataset cannot be read or written."""


class Conflict(Exception):
    """Another writer changed the requests dataset since it was read: read again and decide again."""


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def timestamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def new_request_id(moment: datetime) -> str:
    """Sorts in submission order (to the millisecond); the random tail keeps simultaneous ones apart."""
    moment = moment.astimezone(timezone.utc)
    return f"{moment:%Y%m%dT%H%M%S}{moment.microsecond // 1000:03d}Z-{secrets.token_hex(4)}"


def looks_like_token(text: str) -> bool:
    return bool(_TOKEN.search(text))


def scrub(text: str, secrets_to_hide: tuple[str, ...] = ()) -> str:
    """A failure reason fit for a public file: one line, no token, no address, no local path."""
    for secret in secrets_to_hide:
        if secret:
            text = text.replace(secret, "***")
    text = _TOKEN.sub("***", text)
    text = _ADDRESS.sub("<host>", text)
    text = _ABSOLUTE_PATH.sub("<path>", text)
    text = " ".join(text.split())
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def submission_model_id(repo_id: str, commit: str) -> str:
    """The ``model_id`` of a submitted model in every table: its repo and the commit evaluated."""
    return f"{repo_id}@{commit[:12]}"


@dataclass(frozen=True)
class Request:
    """``requests/<request_id>.json``."""

    request_id: str
    repo_id: str  # the submitted model repo
    revision: str  # as the submitter gave it (branch, tag or commit)
    commit: str  # the commit it resolved to when submitted: what is evaluated
    weights: str  # "full" (a causal LM) or "adapter" (a PEFT LoRA adapter on base_model)
    base_model: str  # Hub id of the base model
    base_model_name: str  # the leaderboard's name of the base model (its id when it is not the study's)
    submitter: str  # the model repo's namespace: the rate limit counts per submitter
    contact: str  # as the submitter typed it
    submitted_at: str
    dataset: str | None = None  # the SFT dataset, if the submitter knows it
    method: str | None = None  # the SFT method, if known: full | lora
    status: str = PENDING
    updated_at: str | None = None
    attempts: int = 0  # how many times a queue started it
    owner: str | None = None  # the queue run working on it (a random id)
    started_at: str | None = None
    heartbeat_at: str | None = None  # renewed while it runs: a stale one was killed
    error: str | None = None  # why it failed
    schema: int = SCHEMA_VERSION

    @property
    def path(self) -> str:
        return f"{REQUESTS_DIR}/{self.request_id}.json"

    @property
    def results_path(self) -> str:
        return f"{SUBMISSIONS_DIR}/{self.request_id}.parquet"

    @property
    def model_id(self) -> str:
        return submission_model_id(self.repo_id, self.commit)

    @property
    def score_method(self) -> str:
        """``method`` of the score rows: an adapter is ``lora``; full weights keep the given method."""
        return "lora" if self.weights == "adapter" else (self.method or "full")

    def identity(self) -> dict[str, Any]:
        """The identity columns of ``common.schema`` for this submission's score rows."""
        return {
            "model_id": self.model_id,
            "run_id": None,
            "base_model": self.base_model,
            "base_model_name": self.base_model_name,
            "dataset": self.dataset or "unknown",
            "method": self.score_method,
            "data_size": None,
            "epoch": None,
            "lr_schedule": None,
        }

    def same_model(self, other: Request) -> bool:
        return (self.repo_id, self.commit, self.base_model) == (other.repo_id, other.commit, other.base_model)

    def moved(self, status: str, moment: datetime, **changes: Any) -> Request:
        return replace(self, status=status, updated_at=timestamp(moment), **changes)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Request:
        """A request file, checked field by field (the file may have been edited by hand)."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as error:
            raise InputError(f"request file is not JSON ({error})") from None
        if not isinstance(data, dict):
            raise InputError("request file is not a JSON object")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        missing = [f.name for f in fields(cls) if f.default is MISSING and f.name not in values]
        if missing:
            raise InputError(f"request file lacks {missing}")
        for name, value in values.items():
            expected = int if name in ("attempts", "schema") else str
            if value is not None and not isinstance(value, expected):
                raise InputError(f"request field {name!r} is {type(value).__name__}, not {expected.__name__}")
        request = cls(**values)
        if not _REQUEST_ID.match(request.request_id) or request.status not in STATUSES:
            raise InputError(f"request {request.request_id!r}: bad id or status {request.status!r}")
        if request.weights not in WEIGHTS:
            raise InputError(f"request {request.request_id}: weights {request.weights!r} not in {WEIGHTS}")
        return request


def is_stale(request: Request, now: datetime, stale_after_s: float) -> bool:
    """A running request whose queue stopped renewing its heartbeat (killed, crashed, machine lost)."""
    beat = parse_timestamp(request.heartbeat_at or request.started_at or request.updated_at)
    return request.status == RUNNING and (beat is None or (now - beat).total_seconds() > stale_after_s)


def in_order(requests: list[Request]) -> list[Request]:
    return sorted(requests, key=lambda r: (r.submitted_at, r.request_id))


class RequestsRepo:
    """The requests dataset on a Hub (``huggingface_hub`` against ``endpoint``; the token comes from
    ``HF_TOKEN`` unless given). Reads are of one commit; writes are commits on top of the commit read."""

    def __init__(self, repo_id: str, endpoint: str, token: str | None = None) -> None:
        from huggingface_hub import HfApi

        self.repo_id = repo_id
        self.endpoint = endpoint
        self.api = HfApi(endpoint=endpoint, token=token)
        self._by_blob: dict[str, Request] = {}  # file content id -> parsed request (files never change)

    def head(self) -> str | None:
        """The current commit of the main branch; None when the dataset does not exist yet."""
        from huggingface_hub.errors import RepositoryNotFoundError

        try:
            return self.api.repo_info(self.repo_id, repo_type="dataset").sha
        except RepositoryNotFoundError:
            return None

    def read(self) -> tuple[str | None, list[Request]]:
        """(head commit, every request at that commit in submission order). Unreadable files are skipped
        with a warning: one hand-edited file must not stop the queue or the Space."""
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        head = self.head()
        if head is None:
            return None, []
        try:
            entries = list(
                self.api.list_repo_tree(self.repo_id, REQUESTS_DIR, repo_type="dataset", revision=head)
            )
        except EntryNotFoundError:
            return head, []
        requests = []
        for entry in entries:
            if not entry.path.endswith(".json") or getattr(entry, "blob_id", None) is None:
                continue
            if entry.blob_id not in self._by_blob:
                path = hf_hub_download(
                    self.repo_id,
                    entry.path,
                    repo_type="dataset",
                    revision=head,
                    endpoint=self.endpoint,
                    token=self.api.token,
                )
                try:
                    with open(path, "rb") as handle:
                        self._by_blob[entry.blob_id] = Request.from_json(handle.read())
                except InputError as error:
                    log.warning("skipping %s: %s", entry.path, error)
                    continue
            requests.append(self._by_blob[entry.blob_id])
        return head, in_order(requests)

    def write(self, request: Request, parent: str | None, message: str) -> str:
        """Commit ``request`` on top of ``parent`` (the head it was decided on); :class:`Conflict` when
        the dataset moved since. Creates the dataset (private: requests hold contacts) when missing."""
        from huggingface_hub import CommitOperationAdd
        from huggingface_hub.errors import HfHubHTTPError

        if parent is None:
            self.api.create_repo(self.repo_id, repo_type="dataset", private=True, exist_ok=True)
            parent = self.head()
        operation = CommitOperationAdd(request.path, request.to_json().encode("utf-8"))
        try:
            info = self.api.create_commit(
                self.repo_id,
                [operation],
                commit_message=message,
                repo_type="dataset",
                parent_commit=parent,
            )
        except HfHubHTTPError as error:
            if error.response is not None and error.response.status_code in (409, 412):
                raise Conflict(str(error)) from None
            raise
        return info.oid

    def update(
        self, request_id: str, change: Callable[[Request], Request | None], message: str, attempts: int = 5
    ) -> Request | None:
        """Apply ``change`` to the current version of a request and commit it; re-read and re-apply on a
        conflict. ``change`` returns None to leave the request as it is (then None is returned)."""
        for _ in range(attempts):
            head, requests = self.read()
            current = next((r for r in requests if r.request_id == request_id), None)
            if current is None:
                raise RequestsRepoError(f"request {request_id} is not in {self.repo_id}")
            changed = change(current)
            if changed is None:
                return None
            try:
                self.write(changed, head, message)
            except Conflict:
                continue
            return changed
        raise RequestsRepoError(
            f"{self.repo_id} kept changing while request {request_id} was updated; run again"
        )
