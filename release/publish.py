"""``python -m release.publish`` (or ``python -m release publish``): publish a study to the Hub.

Models (one repo per base model x dataset x method x size x schedule, a branch ``epoch-NN`` per kept epoch,
``main`` = final epoch), their base models when built locally, the results dataset, the leaderboard Space
and a collection. Idempotent and resumable: each (repo, revision) is diffed against the Hub and only the
difference is committed, so re-running an unchanged release makes no commit and a killed run resumes.

Where to: with HF_TOKEN (or a `hf auth login`) it publishes to --endpoint (default: HF_ENDPOINT, else
huggingface.co); with no token and no endpoint it stages the release into a local Hub folder
(<root>/hub) served by `python -m localhub` for the duration, and prints how to browse it.

examples:
  python -m release.publish --root outputs/demo --dry-run
  python -m release.publish --root outputs/demo                       # stage into outputs/demo/hub
  HF_TOKEN=... python -m release.publish --root outputs/paper --config study --namespace my-org
  python -m release.publish --root outputs/demo --set concurrency=16 --set include.space=false
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi
from huggingface_hub import constants as hub_constants
from tqdm.auto import tqdm

from common.cli import run_command
from common.config import setting
from common.errors import MassiveSFTError, ServiceError, UsageError
from common.io import write_json
from common.layout import OutputRoot
from common.paths import PROJECT_ROOT, configs_dir
from localhub import serve_in_background
from release.cards import ModelResults
from release.config import ReleaseConfig, ReleaseConfigError, RequestBudget
from release.executor import Publisher, RepoResult, StateFile, read_heads, run_all
from release.hub import (
    Pacer,
    RequestStats,
    Retrier,
    SecretSafeError,
    install_budget,
    preflight,
    scrub,
)
from release.inputs import ReleaseInputs, load_inputs
from release.merge import merge_lora_checkpoints
from release.plan import (
    HashCache,
    RepoPlan,
    base_repo_plan,
    model_repo_plan,
    plan_summary,
    results_repo_plan,
    space_repo_plan,
)
from release.results_dataset import build_results_dataset
from release.usage import download_instructions

log = logging.getLogger("release.publish")
DEFAULT_ENDPOINT = "https://huggingface.co"
STAGING_HELP_PORT = 8900  # the port the printed instructions serve the staged Hub on
COLLECTION_MAX_ITEMS = 1000  # the Hub's limit per collection


class ReleaseApi(HfApi):
    """HfApi without its pre-commit ``POST /api/validate-yaml`` (one request per commit that changes a
    card, 15% of a first publish): the Hub's commit endpoint validates README metadata itself and
    rejects a bad card with the same message, and release/cards.py builds every card from one template."""

    def _validate_yaml(self, content: str, *, repo_type: str | None = None, token: Any = None) -> None:
        return None


@dataclass
class Target:
    endpoint: str
    token: str | None
    staging: bool = False
    hub_root: Path | None = None


@dataclass
class PublishOutcome:
    results: list[RepoResult]
    plans: list[RepoPlan]
    stats: RequestStats
    seconds: float
    collection: str | None = None
    fatal: str | None = None  # why the whole release stopped (the Hub became unusable)

    @property
    def failed(self) -> list[RepoResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def commits(self) -> int:
        return sum(r.commits for r in self.results)


CONFIGS = configs_dir() / "release"  # --config NAME: a release config of this folder
DEFAULT_CONFIG = "demo"


@dataclass(frozen=True)
class Options:
    """The command's own settings, and every release config field (--config/--set, or flags such as
    --namespace and --concurrency)."""

    root: Path = setting(None, "output root of the study (runs/, scores.parquet...)", required=True)
    endpoint: str | None = setting(
        None, "Hub endpoint (default: HF_ENDPOINT, else huggingface.co; none and no token: stage locally)"
    )
    stage: bool = setting(False, "stage into the local Hub folder even when HF_TOKEN or HF_ENDPOINT are set")
    hub_root: Path | None = setting(None, "staging Hub folder (default: <root>/hub)")
    port: int | None = setting(None, "port of the staging Hub (default: a free one)")
    dry_run: bool = setting(False, "print and save the plan (what would change), write nothing to the Hub")
    plan_out: Path | None = setting(None, "where to save the plan JSON (default: <root>/.release/plan.json)")
    state: Path | None = setting(
        None,
        "state file of verified revisions (default: <root>/.release/state.json); delete it to force a "
        "full remote diff",
    )
    no_progress: bool = setting(False, "no progress bar")
    no_instructions: bool = setting(
        False,
        "after staging, do not print how to serve and download the release (the pipeline prints them "
        "itself, with the ports it serves on)",
    )
    verbose: bool = setting(False, "debug logging (never shows the token)", short="-v")
    release: ReleaseConfig = setting(default_factory=ReleaseConfig, inline=True)


# ---------------------------------------------------------------- target


def resolve_target(options: Options) -> Target:
    from huggingface_hub import get_token

    token = os.environ.get("HF_TOKEN") or get_token()
    endpoint = options.endpoint or os.environ.get("HF_ENDPOINT")
    if options.stage or (token is None and endpoint is None):
        return Target("", None, staging=True, hub_root=options.hub_root or OutputRoot(options.root).hub_dir)
    if token is None and not options.dry_run:
        raise ReleaseConfigError(
            f"no Hub token for {endpoint}: set HF_TOKEN or run `hf auth login` "
            "(or unset HF_ENDPOINT to stage the release locally)"
        )
    return Target((endpoint or DEFAULT_ENDPOINT).rstrip("/"), token)


def unpaced(config: ReleaseConfig) -> ReleaseConfig:
    """The staging Hub has no rate limits: pacing meant for the Hub would only slow staging down."""
    return replace(
        config,
        repo_creation_interval_s=0.0,
        budget=RequestBudget(rate_per_s=1e6, burst=10**6),
        concurrency=max(config.concurrency, 8),
    )


@contextmanager
def connected(target: Target, port: int | None, namespace: str) -> Iterator[Target]:
    """For staging: serve the local Hub for the duration, with a throwaway write token of the user
    named like the release's namespace (so it may write there)."""
    if not target.staging:
        yield target
        return

    token = f"hf_staging_{secrets.token_hex(16)}"
    with serve_in_background(target.hub_root, port=port, tokens={token: namespace}) as hub:
        yield replace(target, endpoint=hub.endpoint, token=token)


# ---------------------------------------------------------------- status


class StatusLine:
    """A line on stderr at least every ``interval`` seconds saying where the release is, also under
    --no-progress: at the Hub's pacing one repo can take minutes, and silence looks like a hang."""

    def __init__(self, interval: float, stats: RequestStats | None = None) -> None:
        self.interval, self.stats = interval, stats
        self.phase, self.done, self.total, self.failed = "planning", 0, 0, 0
        self.started = time.monotonic()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="release-status", daemon=True)

    def __enter__(self) -> StatusLine:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join()

    def start_phase(self, phase: str, total: int) -> None:
        self.phase, self.done, self.total, self.failed = phase, 0, total, 0

    def line(self) -> str:
        minutes, seconds = divmod(int(time.monotonic() - self.started), 60)
        text = f"[{minutes:d}:{seconds:02d}] {self.phase}: {self.done}/{self.total or '?'} repos"
        if self.failed:
            text += f", {self.failed} failed"
        if self.stats is not None:
            text += f", {self.stats.total} HTTP requests"
        return text

    def _run(self) -> None:
        while not self.stopped.wait(self.interval):
            tqdm.write(self.line(), file=sys.stderr)


# ---------------------------------------------------------------- plan


def build_plans(
    inputs: ReleaseInputs,
    config: ReleaseConfig,
    work_dir: Path,
    endpoint: str | None,
    hashes: HashCache,
    progress: bool,
    status: StatusLine | None = None,
) -> list[RepoPlan]:
    plans: list[RepoPlan] = []
    results = ModelResults.build(inputs.scores, inputs.gains)
    if config.include.base_models:
        plans += [base_repo_plan(base, config, hashes) for base in inputs.bases]
    if config.include.models:
        if status is not None:
            status.start_phase("planning models", len(inputs.groups))
        for group in tqdm(inputs.groups, desc="plan models", unit="repo", disable=not progress):
            plans.append(model_repo_plan(group, inputs, config, hashes, results))
            if status is not None:
                status.done += 1
    if config.include.results_dataset:
        folder = build_results_dataset(inputs, work_dir / "results", config, inputs.locations())
        plans.append(results_repo_plan(folder, config, hashes))
    if config.include.space:
        plans.append(space_repo_plan(PROJECT_ROOT / config.space_dir, config, hashes, endpoint))
    return plans


# ---------------------------------------------------------------- collection


def collection_items(plans: list[RepoPlan]) -> list[tuple[str, str]]:
    order = {"results": 0, "space": 1, "base_model": 2, "model": 3}
    ranked = sorted(plans, key=lambda p: (order[p.kind], p.repo_id))
    return [(p.repo_id, p.repo_type) for p in ranked][:COLLECTION_MAX_ITEMS]


def sync_collection(api: Any, retrier: Retrier, config: ReleaseConfig, plans: list[RepoPlan]) -> str:
    """Create the collection once (found again by title) and add the items it lacks."""
    existing = retrier.call(
        "list collections",
        lambda: [
            c
            for c in api.list_collections(owner=config.namespace, limit=100)
            if c.title == config.collection_title
        ],
    )
    if existing:
        slug = existing[0].slug
    else:
        slug = retrier.call(
            "create collection",
            api.create_collection,
            title=config.collection_title,
            namespace=config.namespace,
            description=config.collection_description,
            private=config.private,
            exists_ok=True,
        ).slug
    have = {
        (item.item_id, item.item_type)
        for item in retrier.call("read collection", api.get_collection, slug).items
    }
    for item_id, item_type in collection_items(plans):
        if (item_id, item_type) not in have:
            retrier.call(
                f"add {item_id} to the collection",
                api.add_collection_item,
                slug,
                item_id=item_id,
                item_type=item_type,
                exists_ok=True,
            )
    return slug


# ---------------------------------------------------------------- run


def publish(
    inputs: ReleaseInputs,
    config: ReleaseConfig,
    target: Target,
    *,
    dry_run: bool = False,
    state_path: Path | None = None,
    work_dir: Path | None = None,
    progress: bool = True,
) -> PublishOutcome:
    """Plan, diff and (unless ``dry_run``) publish; returns per-repo results. Never raises for one repo's
    failure: it is reported in the results (status ``failed``)."""
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()  # one bar for the whole release, not one per uploaded file
    started = time.monotonic()
    work_dir = work_dir or OutputRoot(inputs.root).release_work_dir
    hashes = HashCache(None if dry_run else work_dir / "hashes.json")
    scratch = (
        tempfile.TemporaryDirectory(prefix="release-dry-run-") if dry_run else nullcontext(str(work_dir))
    )
    if not dry_run:
        merge_lora_checkpoints(inputs, config)  # the explicit step before planning; plans only read
    with scratch as scratch_dir, StatusLine(config.status_interval_s) as status:
        space_endpoint = None if target.staging or target.endpoint == DEFAULT_ENDPOINT else target.endpoint
        plans = build_plans(inputs, config, Path(scratch_dir), space_endpoint, hashes, progress, status)
        hashes.save()
        stats = install_budget(config.budget, config.retry.timeout_s)
        status.stats = stats
        status.start_phase("dry run" if dry_run else "publishing", len(plans))
        api = ReleaseApi(endpoint=target.endpoint, token=target.token or False)
        retrier = Retrier(config.retry, target.token, endpoint=target.endpoint)
        state = StateFile(None if dry_run else (state_path or work_dir / "state.json"), target.endpoint)
        publisher = Publisher(
            api,
            retrier,
            Pacer(config.repo_creation_interval_s),
            state,
            private=config.private,
            commit_prefix=config.commit_prefix,
            dry_run=dry_run,
            heads=read_heads(api, retrier, plans),
        )
        bar = tqdm(
            total=len(plans), desc="dry run" if dry_run else "publish", unit="repo", disable=not progress
        )

        def finished(result: RepoResult) -> None:
            bar.update()
            status.done += 1
            status.failed += result.status == "failed"

        with bar:
            results = run_all(publisher, plans, config.concurrency, progress=finished)
    collection = None
    if config.include.collection and not dry_run and not any(r.status == "failed" for r in results):
        try:
            collection = sync_collection(api, retrier, config, plans)
        except SecretSafeError as error:
            results.append(RepoResult(config.collection_title, "collection", "failed", error=str(error)))
    return PublishOutcome(results, plans, stats, time.monotonic() - started, collection, retrier.fatal)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def plan_table(outcome: PublishOutcome) -> str:
    lines = [f"{'repo':60} {'type':8} {'revision':10} {'action':14} {'files':>6} {'upload':>9} {'delete':>6}"]
    plans = {(p.repo_type, p.repo_id): p for p in outcome.plans}
    for result in outcome.results:
        plan = plans.get((result.repo_type, result.repo_id))
        for diff in result.diffs:
            action = (
                "create repo"
                if result.status == "created" and diff.revision == "main"
                else "create branch"
                if diff.branch_missing
                else "update"
                if diff.changed
                else "unchanged"
            )
            total = len(plan.files_of(diff.revision)) if plan else 0
            lines.append(
                f"{result.repo_id[:60]:60} {result.repo_type:8} {diff.revision:10} {action:14} "
                f"{len(diff.add):>3}/{total:<3}{_size(diff.upload_bytes):>9} {len(diff.delete):>6}"
            )
    return "\n".join(lines)


def summary_table(outcome: PublishOutcome) -> str:
    counts = Counter(r.status for r in outcome.results)
    lines = ["", f"{'status':10} {'repos':>6}"] + [
        f"{s:10} {counts.get(s, 0):>6}" for s in ("created", "updated", "skipped", "failed")
    ]
    lines.append(
        f"commits {outcome.commits}, branches created {sum(r.branches for r in outcome.results)}, "
        f"files sent {sum(r.files_sent for r in outcome.results)} "
        f"({_size(sum(r.bytes_sent for r in outcome.results))}), HTTP requests {outcome.stats.total}, "
        f"{outcome.seconds:.1f}s"
    )
    lines += [f"FAILED {r.repo_id}: {r.error}" for r in outcome.failed]
    return "\n".join(lines)


def outcome_json(outcome: PublishOutcome, dry_run: bool) -> dict[str, Any]:
    diffs = {(r.repo_type, r.repo_id): r for r in outcome.results}
    summary = plan_summary(outcome.plans)
    for repo in summary["repos"]:
        result = diffs.get((repo["repo_type"], repo["repo_id"]))
        repo["status"] = result.status if result else "unknown"
        changes = {d.revision: d for d in (result.diffs if result else [])}
        for revision in repo["revisions"]:
            diff = changes.get(revision["revision"])
            revision.update(
                add=diff.add if diff else [],
                delete=diff.delete if diff else [],
                create_branch=bool(diff and diff.branch_missing),
            )
    summary.update(
        dry_run=dry_run,
        commits=outcome.commits,
        requests=dict(outcome.stats.counts),
        seconds=round(outcome.seconds, 3),
        collection=outcome.collection,
    )
    return summary


def staging_help(target: Target, config: ReleaseConfig, outcome: PublishOutcome) -> str:
    """How to serve what was staged, then read it: the same instructions `pipeline` prints when it serves."""
    model = next(
        (
            (p.repo_id, r.revision)
            for p in outcome.plans
            if p.kind == "model"
            for r in p.revisions
            if r.revision.startswith("epoch-")
        ),
        None,
    )
    hub_url = f"http://127.0.0.1:{STAGING_HELP_PORT}"
    lines = [
        "",
        f"Staged into the local Hub folder {target.hub_root}. Serve it, and the leaderboard Space:",
        f"  python -m localhub --root {target.hub_root} --port {STAGING_HELP_PORT}",
        f"  python -m space --endpoint {hub_url} --results {config.results_repo()}",
        *download_instructions(hub_url, config.results_repo(), model),
    ]
    return "\n".join(lines)


def main(options: Options) -> int:
    logging.basicConfig(
        level=logging.DEBUG if options.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    for noisy in ("httpx", "httpx2", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    config = options.release
    inputs = load_inputs(options.root, config)
    target = resolve_target(options)
    if target.staging and hub_constants.HF_HUB_OFFLINE:
        raise UsageError(
            "HF_HUB_OFFLINE=1 blocks every huggingface_hub request, also to the local staging Hub; "
            "run with HF_HUB_OFFLINE=0 (staging talks only to a server on 127.0.0.1)"
        )
    if target.staging:
        config = unpaced(config)
    token = None
    try:
        with connected(target, options.port, config.namespace) as live:
            token = live.token
            preflight(live.endpoint, live.token, config.namespace, write=not options.dry_run)
            outcome = publish(
                inputs,
                config,
                live,
                dry_run=options.dry_run,
                state_path=options.state,
                progress=not options.no_progress,
            )
    except (MassiveSFTError, OSError) as error:
        # Reported by the CLI shell: the token is scrubbed from the message first.
        raise ServiceError(scrub(str(error), token)) from None
    if outcome.fatal is not None:  # one line, not one failure per repo
        raise ServiceError(outcome.fatal)
    plan_out = options.plan_out or OutputRoot(options.root).release_work_dir / (
        "plan.json" if options.dry_run else "last_publish.json"
    )
    write_json(plan_out, outcome_json(outcome, options.dry_run))
    if options.dry_run:
        print(plan_table(outcome))
    print(summary_table(outcome))
    print(f"{'plan' if options.dry_run else 'report'} saved to {plan_out}")
    if live.staging and not options.dry_run and not options.no_instructions:
        print(staging_help(live, config, outcome))
    return 1 if outcome.failed else 0


if __name__ == "__main__":
    sys.exit(run_command("python -m release.publish", sys.modules[__name__]))
