"""The Submit tab: someone names a fine-tuned model (full weights, or a PEFT LoRA adapter with its base),
the Space checks it and writes a request to the requests dataset (``common.submissions``), and
``python -m evaluation queue`` evaluates it later; its scores then appear in the leaderboard, marked as
a submission. Also the queue view: every request and its status.

Everything typed here is untrusted. Before anything is written the submission must pass, in order: the
form (a repo id, a revision, a contact that is not an access token); the model (its repo and revision
exist and are public: read without the Space's token; its ``config.json`` is a transformers causal LM
without custom code, or its ``adapter_config.json`` a LoRA adapter; its safetensors headers parse:
read with range requests, the weights are not downloaded); the base model (one the leaderboard or the
study knows, or a public model repo named explicitly); no pending, running or finished request for the
same model (repo and commit); the submitter's daily limit (per namespace of the model repo). A refusal
says which check failed and how to fix it, and writes nothing."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import gradio as gr
import pandas as pd

from common.catalog import PAPER_BASE_MODELS
from common.errors import InputError
from common.gains import is_base
from common.submissions import (
    ACTIVE,
    SFT_METHODS,
    Conflict,
    Request,
    RequestsRepo,
    looks_like_token,
    new_request_id,
    parse_timestamp,
    submission_model_id,
    timestamp,
    utc_now,
)
from space.config import SpaceConfig
from space.data import ResultsStore

log = logging.getLogger(__name__)
RATE_WINDOW = timedelta(hours=24)
MAX_CONFIG_BYTES = 1_000_000  # a config.json / adapter_config.json larger than this is refused unread
CAUSAL_LM_SUFFIXES = ("ForCausalLM", "LMHeadModel")
UNKNOWN_METHOD = "unknown"
_SINGLE_LINE = re.compile(r"^[^\x00-\x1f\x7f]*$")
_REVISION = re.compile(r"^[A-Za-z0-9._/-]+$")  # branch, tag or commit names as the Hub spells them
_DATASET = re.compile(r"^[\w./:+() -]*$")  # shown in the leaderboard: plain words only
QUEUE_COLUMNS = ["submitted (UTC)", "model", "revision", "base model", "status", "updated (UTC)", "reason"]


class SubmissionRefused(InputError):
    """A submission that failed a check; the message says which and how to fix it."""


@dataclass(frozen=True)
class SubmissionForm:
    """What the submitter typed."""

    repo_id: str = ""
    revision: str = "main"
    base_model: str = ""
    dataset: str = ""
    method: str = UNKNOWN_METHOD
    contact: str = ""


@dataclass(frozen=True)
class ModelFacts:
    commit: str
    weights: str  # "full" | "adapter"
    adapter_base: str | None = None  # the base an adapter's config names


# ---------------------------------------------------------------- the form


def _text(value: str | None, label: str, limit: int, required: bool = False) -> str:
    text = (value or "").strip()
    if required and not text:
        raise SubmissionRefused(f"{label} is empty: fill it in")
    if len(text) > limit or not _SINGLE_LINE.match(text):
        raise SubmissionRefused(f"{label} must be one line of at most {limit} characters")
    return text


def clean_form(form: SubmissionForm) -> SubmissionForm:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    repo_id = _text(form.repo_id, "Model repo id", 96 * 2 + 1, required=True)
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        repo_id = ""
    if "/" not in repo_id:
        raise SubmissionRefused(
            f"{form.repo_id.strip()!r} is not a model repo id: give namespace/name, e.g. my-org/my-sft-model"
        )
    revision = _text(form.revision, "Revision", 200) or "main"
    if not _REVISION.match(revision) or ".." in revision:
        raise SubmissionRefused(f"revision {revision!r} is not a branch, tag or commit name")
    dataset = _text(form.dataset, "SFT dataset", 100)
    if not _DATASET.match(dataset):
        raise SubmissionRefused(
            "SFT dataset: letters, digits, spaces and ._/:+-() only (e.g. lima, my-org/my-data)"
        )
    contact = _text(form.contact, "Contact", 200, required=True)
    if looks_like_token(contact):
        raise SubmissionRefused(
            "the contact looks like an access token: never paste a token here; give an e-mail address "
            "or a Hub user name"
        )
    method = (form.method or UNKNOWN_METHOD).strip().lower()
    if method not in (*SFT_METHODS, UNKNOWN_METHOD):
        raise SubmissionRefused(f"SFT method {method!r}: choose one of {[*SFT_METHODS, UNKNOWN_METHOD]}")
    return SubmissionForm(
        repo_id=repo_id,
        revision=revision,
        base_model=_text(form.base_model, "Base model", 200),
        dataset=dataset,
        method=method,
        contact=contact,
    )


# ---------------------------------------------------------------- the model


def model_api(endpoint: str) -> Any:
    """Reads submitted models without a token: what the Space could read with its own token (a private
    repo of its organisation) must not be evaluated and published."""
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint, token=False)


def _read_json_file(api: Any, repo_id: str, commit: str, name: str, sizes: dict[str, int | None]) -> dict:
    from huggingface_hub import hf_hub_download

    if (sizes.get(name) or 0) > MAX_CONFIG_BYTES:
        raise SubmissionRefused(
            f"{name} of {repo_id} is larger than {MAX_CONFIG_BYTES:,} bytes: not a config"
        )
    path = hf_hub_download(repo_id, name, revision=commit, endpoint=api.endpoint, token=False)
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read())
    except (ValueError, UnicodeDecodeError):
        raise SubmissionRefused(
            f"{name} of {repo_id} is not valid JSON: the weights cannot be loaded"
        ) from None
    if not isinstance(data, dict):
        raise SubmissionRefused(f"{name} of {repo_id} is not a JSON object: the weights cannot be loaded")
    return data


def _check_causal_lm(config: dict, repo_id: str) -> None:
    if "auto_map" in config:
        raise SubmissionRefused(
            f"{repo_id} needs custom code (auto_map in config.json), which the evaluator never runs: "
            "submit a model of a transformers architecture"
        )
    architectures = config.get("architectures") or []
    if not isinstance(config.get("model_type"), str) or not any(
        isinstance(a, str) and a.endswith(CAUSAL_LM_SUFFIXES) for a in architectures
    ):
        raise SubmissionRefused(
            f"config.json of {repo_id} is not a causal language model (architectures {architectures}, "
            "model_type missing or not a string): submit a ...ForCausalLM model or a LoRA adapter"
        )


def _check_adapter(config: dict, repo_id: str) -> str | None:
    if str(config.get("peft_type", "")).upper() != "LORA":
        raise SubmissionRefused(
            f"adapter_config.json of {repo_id} is a {config.get('peft_type')!r} adapter: only LoRA "
            "adapters are evaluated; merge it into its base and submit the full weights"
        )
    if config.get("task_type") not in (None, "CAUSAL_LM"):
        raise SubmissionRefused(
            f"adapter {repo_id} is for task {config.get('task_type')!r}, not a causal language model"
        )
    base = config.get("base_model_name_or_path")
    return base.strip() if isinstance(base, str) and base.strip() else None


def _check_weights(api: Any, repo_id: str, commit: str, adapter: bool) -> None:
    """The safetensors headers parse (range requests: the weights themselves are not downloaded)."""
    from huggingface_hub.errors import HfHubHTTPError, NotASafetensorsRepoError, SafetensorsParsingError

    try:
        if adapter:
            api.parse_safetensors_file_metadata(repo_id, "adapter_model.safetensors", revision=commit)
        else:
            api.get_safetensors_metadata(repo_id, revision=commit)
    except (NotASafetensorsRepoError, SafetensorsParsingError, HfHubHTTPError, ValueError) as error:
        expected = "adapter_model.safetensors" if adapter else "model.safetensors (or its index)"
        raise SubmissionRefused(
            f"the weights of {repo_id} cannot be read: {expected} is missing or damaged "
            f"({type(error).__name__}); upload the weights in safetensors format (pickled .bin files "
            "are not evaluated)"
        ) from None


def check_model(api: Any, repo_id: str, revision: str) -> ModelFacts:
    """The repo and revision exist and are public; the config is a causal LM or a LoRA adapter; the
    safetensors weights are readable."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        info = api.model_info(repo_id, revision=revision, files_metadata=True)
    except GatedRepoError:
        raise SubmissionRefused(f"{repo_id} is gated: the evaluator reads public models only") from None
    except RevisionNotFoundError:
        raise SubmissionRefused(
            f"revision {revision!r} does not exist in {repo_id}: give one of its branches, tags or commits"
        ) from None
    except RepositoryNotFoundError:
        raise SubmissionRefused(
            f"model repo {repo_id} was not found on {api.endpoint}: check the id, and make the repo "
            "public (the evaluator reads it without a token)"
        ) from None
    except HfHubHTTPError as error:
        raise SubmissionRefused(f"the Hub did not answer for {repo_id} ({error}): try again later") from None
    sizes = {s.rfilename: s.size for s in info.siblings or []}
    if "adapter_config.json" in sizes:
        config = _read_json_file(api, repo_id, info.sha, "adapter_config.json", sizes)
        facts = ModelFacts(info.sha, "adapter", _check_adapter(config, repo_id))
    elif "config.json" in sizes:
        _check_causal_lm(_read_json_file(api, repo_id, info.sha, "config.json", sizes), repo_id)
        facts = ModelFacts(info.sha, "full")
    else:
        raise SubmissionRefused(
            f"{repo_id}@{revision} has neither config.json (full weights) nor adapter_config.json (a "
            "PEFT adapter): upload the model saved with save_pretrained"
        )
    _check_weights(api, repo_id, info.sha, facts.weights == "adapter")
    return facts


# ---------------------------------------------------------------- the base model


def known_bases(board: pd.DataFrame) -> dict[str, str]:
    """Base model name -> Hub id: the leaderboard's base rows, then the study's base models."""
    bases = board[is_base(board)][["base_model_name", "base_model"]].dropna()
    known = dict(zip(bases["base_model_name"].astype(str), bases["base_model"].astype(str), strict=True))
    for model in PAPER_BASE_MODELS:
        known.setdefault(model.table_name, model.hf_id)
    return known


def resolve_base(api: Any, facts: ModelFacts, given: str, known: dict[str, str]) -> tuple[str, str]:
    """(Hub id, leaderboard name) of the base model: the one given, else the one an adapter names; a
    known model, or a public model repo given explicitly. An adapter's base must be readable."""
    name = given or facts.adapter_base
    if not name:
        raise SubmissionRefused(
            "name the base model: pick one of the list, or give the Hub repo id of the model that was "
            "fine-tuned"
        )
    by_id = {hub_id: base for base, hub_id in known.items()}
    if name in known:
        hub_id, label = known[name], name
    elif name in by_id:
        hub_id, label = name, by_id[name]
    else:
        hub_id, label = name, name
    is_known = label in known
    if not is_known or facts.weights == "adapter":  # an adapter is evaluated on its base: it must load
        _check_base_readable(api, hub_id, is_known)
    return hub_id, label


def _check_base_readable(api: Any, hub_id: str, is_known: bool) -> None:
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError

    try:
        api.model_info(hub_id)
    except (HfHubHTTPError, HFValidationError):
        what = "the study's base model" if is_known else "the base model"
        raise SubmissionRefused(
            f"{what} {hub_id!r} is not a public model repo on {api.endpoint}: pick a base model of the "
            "list or give the Hub repo id of a public base model"
        ) from None


# ---------------------------------------------------------------- the queue


def check_rate(submitter: str, requests: list[Request], limit: int, now: datetime) -> None:
    """The submitter's daily limit (checked first, before the Hub is asked about the model)."""
    recent = [
        r
        for r in requests
        if r.submitter == submitter and now - (parse_timestamp(r.submitted_at) or now) < RATE_WINDOW
    ]
    if len(recent) >= limit:
        opens = min(parse_timestamp(r.submitted_at) or now for r in recent) + RATE_WINDOW
        raise SubmissionRefused(
            f"{submitter} has submitted {len(recent)} models in the last 24 hours (the limit is "
            f"{limit}): try again after {timestamp(opens)}"
        )


def check_queue(candidate: Request, requests: list[Request], limit: int, now: datetime) -> None:
    """No pending, running or finished request for the same model; the submitter's daily limit."""
    for request in requests:
        if request.status in ACTIVE and request.same_model(candidate):
            raise SubmissionRefused(
                f"{candidate.repo_id} at commit {candidate.commit[:12]} was already submitted: request "
                f"{request.request_id} is {request.status} (see the queue below); push a new commit to "
                "submit a new version"
            )
    check_rate(candidate.submitter, requests, limit, now)


def submit(
    form: SubmissionForm,
    repo: RequestsRepo,
    endpoint: str,
    known: dict[str, str],
    limit: int,
    now: Callable[[], datetime] = utc_now,
) -> Request:
    """Check a submission and write its pending request; :class:`SubmissionRefused` (nothing written)
    when a check fails."""
    form = clean_form(form)
    check_rate(form.repo_id.split("/")[0], repo.read()[1], limit, now())
    api = model_api(endpoint)
    facts = check_model(api, form.repo_id, form.revision)
    base_model, base_name = resolve_base(api, facts, form.base_model, known)
    for _ in range(5):
        head, requests = repo.read()
        moment = now()
        request = Request(
            request_id=new_request_id(moment),
            repo_id=form.repo_id,
            revision=form.revision,
            commit=facts.commit,
            weights=facts.weights,
            base_model=base_model,
            base_model_name=base_name,
            submitter=form.repo_id.split("/")[0],
            contact=form.contact,
            submitted_at=timestamp(moment),
            dataset=form.dataset or None,
            method=None if form.method == UNKNOWN_METHOD else form.method,
        )
        check_queue(request, requests, limit, moment)
        try:
            repo.write(request, head, f"Submit {request.repo_id}@{request.revision} ({request.request_id})")
        except Conflict:
            continue  # another submission landed meanwhile: check again against it
        return request
    raise SubmissionRefused("the queue is busy (it kept changing while this was written): try again")


def queue_frame(requests: list[Request]) -> pd.DataFrame:
    """The public queue view: newest first; no contact."""
    rows = [
        [
            r.submitted_at.replace("T", " ").rstrip("Z"),
            r.repo_id,
            f"{r.revision} ({r.commit[:7]})",
            r.base_model_name,
            r.status,
            (r.updated_at or r.submitted_at).replace("T", " ").rstrip("Z"),
            r.error or "",
        ]
        for r in reversed(requests)
    ]
    return pd.DataFrame(rows, columns=QUEUE_COLUMNS)


# ---------------------------------------------------------------- the tab

INTRO = """Submit a fine-tuned model to be evaluated on the study's suite and shown in the leaderboard beside
the study's models (marked **(submission)**). Give a public model repo: full weights (a causal LM saved
with `save_pretrained`, in safetensors) or a LoRA adapter with its base model. The evaluator never runs
custom code or pickled weights. Requests are evaluated in order by the maintainers' queue; their status
is in the table below. The contact is kept in the requests dataset for the maintainers only; never paste
an access token."""


class SubmitService:
    """The tab's state: one requests dataset client (it caches the request files it has read) and a
    lock, so that two submissions in this process are checked one after the other."""

    def __init__(self, store: ResultsStore) -> None:
        self.store = store
        config: SpaceConfig = store.config
        self.repo = RequestsRepo(config.requests_repo, config.endpoint) if config.requests_repo else None
        self._lock = threading.Lock()

    def submit(self, form: SubmissionForm) -> str:
        if self.repo is None:
            return closed_message()
        known = known_bases(self.store.results.leaderboard)
        try:
            with self._lock:
                request = submit(
                    form, self.repo, self.store.config.endpoint, known, self.store.config.submit_limit
                )
        except SubmissionRefused as error:
            return f"**Refused:** {error}"
        except Exception as error:  # the Hub or the Space's setup, not the submission: nothing was written
            log.warning("submission failed: %s", error)
            return (
                f"**Not queued:** the requests dataset {self.repo.repo_id} could not be read or written "
                f"({type(error).__name__}); try again later. Maintainers: check HF_TOKEN (write access)."
            )
        return (
            f"**Queued:** request `{request.request_id}` for {request.repo_id}@{request.revision} (commit "
            f"`{request.commit[:12]}`, {request.weights} weights, base {request.base_model_name}). It "
            f"appears in the leaderboard as `{submission_model_id(request.repo_id, request.commit)}` once "
            "evaluated."
        )

    def queue(self) -> pd.DataFrame:
        if self.repo is None:
            return queue_frame([])
        try:
            return queue_frame(self.repo.read()[1])
        except Exception as error:  # the page stays usable; the log says why
            log.warning("could not read the requests dataset %s: %s", self.repo.repo_id, error)
            return queue_frame([])


def closed_message() -> str:
    return (
        "Submissions are closed on this Space: its maintainers set no requests dataset "
        "(`--requests REPO` or `SPACE_REQUESTS_REPO`, docs/space.md)."
    )


def submit_tab(store: ResultsStore) -> tuple[Callable[..., list[Any]], list[Any]]:
    """The Submit tab; returns its page-load handler and outputs (the base model choices)."""
    service = SubmitService(store)
    with gr.Tab("Submit", id="submit") as tab:
        gr.Markdown(INTRO if service.repo is not None else closed_message(), elem_id="s-intro")
        with gr.Row():
            repo_id = gr.Textbox(label="Model repo id", placeholder="my-org/my-sft-model", elem_id="s-repo")
            revision = gr.Textbox(
                label="Revision (branch, tag or commit)", value="main", elem_id="s-revision"
            )
            base = gr.Dropdown(
                label="Base model (pick, or type a Hub repo id)", allow_custom_value=True, elem_id="s-base"
            )
        with gr.Row():
            dataset = gr.Textbox(label="SFT dataset (if known)", elem_id="s-dataset")
            method = gr.Dropdown(
                [UNKNOWN_METHOD, *SFT_METHODS], value=UNKNOWN_METHOD, label="SFT method", elem_id="s-method"
            )
            contact = gr.Textbox(label="Contact (e-mail or Hub user name)", elem_id="s-contact")
        send = gr.Button("Submit for evaluation", variant="primary", elem_id="s-submit")
        message = gr.Markdown(elem_id="s-message")
        gr.Markdown("### Queue")
        refresh = gr.Button("Refresh queue", size="sm", elem_id="s-refresh")
        table = gr.Dataframe(value=queue_frame([]), interactive=False, elem_id="s-queue", wrap=True)

    def on_submit(*values: str) -> list[Any]:
        text = service.submit(SubmissionForm(*values))
        return [text, service.queue()]

    inputs = [repo_id, revision, base, dataset, method, contact]
    send.click(on_submit, inputs, [message, table], concurrency_limit=1)
    refresh.click(service.queue, None, table)
    tab.select(service.queue, None, table)

    def on_load(request: gr.Request) -> list[Any]:
        return [gr.update(choices=sorted(known_bases(store.results.leaderboard)))]

    return on_load, [base]
