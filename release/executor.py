"""Bring the Hub to the planned state: per repo, sequentially, diff each (repo, revision) against the
remote and commit only the difference; repos run concurrently. Every commit names its parent commit,
so a retried commit whose first attempt did land is rejected by the server instead of duplicated, and
the repo is re-planned. A verified (repo, revision, commit, digest) is remembered in a state file: the
next run checks the refs only (commits are immutable) and reads a tree only when something moved.

Before any of that, one listing per repo type and namespace (``read_heads``: a handful of requests for
1,000 repos) gives every repo's main head and card metadata. Main's card carries the repo's fingerprint
(every revision's planned digest, release/plan.py ``sealed``) and main is written last, after every
branch, so a main card whose fingerprint is the planned one proves the whole repo unchanged: no request
for that repo, also on a fresh machine without the state file. Why that proof holds: only a completed
write of this plan leaves that fingerprint on main (an interrupted one leaves main untouched, and any
change to any branch changes the fingerprint, hence main). What it trusts: that nobody else moves the
release's branches by hand. The state file narrows that for main: when it verified main at this very
plan and main's head has moved since, the repo is diffed in full (see ``StateFile.main_moved``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.hub import LFS_SIZE_THRESHOLD
from common.io import read_json, write_json
from release.hub import FatalHubError, Pacer, Retrier, SecretSafeError, is_retryable, scrub
from release.plan import FINGERPRINT_KEY, LocalFile, RepoPlan, RevisionPlan, kept_remote

log = logging.getLogger(__name__)
REPLAN_STATUS = frozenset({409, 412})  # the branch moved under us (parent-commit check): re-plan
MAX_REPLANS = 4
NEW_MAIN = ""  # main's head in a repo this run has just created: not read, its tree is empty


@dataclass(frozen=True)
class RemoteEntry:
    blob_id: str | None
    lfs_sha256: str | None
    size: int

    def matches(self, local: LocalFile) -> bool:
        if self.lfs_sha256 is not None:
            return self.lfs_sha256 == local.sha256
        return self.blob_id == local.git_sha1


Tree = dict[str, RemoteEntry]


@dataclass(frozen=True)
class Head:
    """A repo's main head and the fingerprint its card metadata claims, from a listing."""

    commit: str
    fingerprint: str | None


Heads = dict[tuple[str, str], Head]  # (repo_type, repo_id) -> Head


@dataclass
class RevisionDiff:
    revision: str
    add: list[str]
    delete: list[str]
    upload_bytes: int
    branch_missing: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.add or self.delete or self.branch_missing)


def diff_tree(plan: RevisionPlan, tree: Tree) -> tuple[list[str], list[str]]:
    add = [p for p, f in plan.files.items() if p not in tree or not tree[p].matches(f)]
    delete = sorted(p for p in tree if p not in plan.files and not kept_remote(p))
    return add, delete


class StateFile:
    """``{endpoint: {"repo_type:repo_id@revision": [commit, digest]}}`` of verified revisions."""

    def __init__(self, path: Path | None, endpoint: str) -> None:
        self.path, self.endpoint, self.lock = path, endpoint, threading.Lock()
        self.data: dict[str, dict[str, list[str]]] = read_json(path) if path and path.exists() else {}

    @staticmethod
    def key(repo: RepoPlan, revision: str) -> str:
        return f"{repo.repo_type}:{repo.repo_id}@{revision}"

    def verified(self, repo: RepoPlan, revision: RevisionPlan, commit: str) -> bool:
        with self.lock:
            return self.data.get(self.endpoint, {}).get(self.key(repo, revision.revision)) == [
                commit,
                revision.digest,
            ]

    def main_moved(self, repo: RepoPlan, commit: str) -> bool:
        """Main was verified at this plan's digest at another commit than ``commit``: someone committed
        to main since (a plan that changed since would have made the publisher commit itself)."""
        with self.lock:
            entry = self.data.get(self.endpoint, {}).get(self.key(repo, "main"))
        return entry is not None and entry[1] == repo.main.digest and entry[0] != commit

    def record(self, repo: RepoPlan, entries: dict[str, list[str]]) -> None:
        if self.path is None:
            return
        with self.lock:
            scope = self.data.setdefault(self.endpoint, {})
            fresh = {self.key(repo, rev): value for rev, value in entries.items()}
            if all(scope.get(key) == value for key, value in fresh.items()):
                return  # a no-op re-publish rewrites nothing: the whole file per repo was most of its time
            scope.update(fresh)
            write_json(self.path, self.data)


@dataclass
class RepoResult:
    repo_id: str
    repo_type: str
    status: str = "skipped"  # created | updated | skipped | failed | planned
    commits: int = 0
    branches: int = 0
    files_sent: int = 0
    bytes_sent: int = 0
    error: str | None = None
    diffs: list[RevisionDiff] = field(default_factory=list)
    verified: int = 0
    # revision -> commit whose tree this run knows to match the plan (read, or the answer to its own commit)
    known: dict[str, str] = field(default_factory=dict, repr=False)


class Publisher:
    def __init__(
        self,
        api: Any,
        retrier: Retrier,
        pacer: Pacer,
        state: StateFile,
        *,
        private: bool = False,
        commit_prefix: str = "release",
        dry_run: bool = False,
        heads: Heads | None = None,
    ) -> None:
        self.api, self.retrier, self.pacer, self.state = api, retrier, pacer, state
        self.private, self.commit_prefix, self.dry_run = private, commit_prefix, dry_run
        self.heads = heads  # None: no listing (the Hub refused it): every repo reads its refs

    # ------------------------------------------------------------ remote reads

    def refs(self, repo: RepoPlan) -> dict[str, str] | None:
        """branch -> commit, or None when the repo does not exist."""
        from huggingface_hub.errors import RepositoryNotFoundError

        try:
            refs = self.retrier.call(
                f"list refs of {repo.repo_id}",
                self.api.list_repo_refs,
                repo.repo_id,
                repo_type=repo.repo_type,
            )
        except SecretSafeError as error:
            if error.status == 404 or "RepositoryNotFound" in str(error):
                return None
            raise
        except RepositoryNotFoundError:
            return None
        return {b.name: b.target_commit for b in refs.branches}

    def tree(self, repo: RepoPlan, commit: str) -> Tree:
        def read() -> Tree:
            entries = self.api.list_repo_tree(
                repo.repo_id, repo_type=repo.repo_type, revision=commit, recursive=True
            )
            return {
                e.path: RemoteEntry(e.blob_id, e.lfs.sha256 if e.lfs else None, e.size)
                for e in entries
                if hasattr(e, "blob_id")
            }

        return self.retrier.call(f"list files of {repo.repo_id}@{commit[:8]}", read)

    # ------------------------------------------------------------ writes

    def create_repo(self, repo: RepoPlan) -> None:
        self.pacer.wait()
        extra = {"space_sdk": "gradio"} if repo.repo_type == "space" else {}
        self.retrier.call(
            f"create {repo.repo_id}",
            self.api.create_repo,
            repo.repo_id,
            repo_type=repo.repo_type,
            private=self.private,
            exist_ok=True,
            **extra,
        )

    def operations(self, plan: RevisionPlan, add: list[str], delete: list[str]) -> list[Any]:
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        ops: list[Any] = [
            CommitOperationAdd(path_in_repo=p, path_or_fileobj=plan.files[p].source or plan.files[p].data)
            for p in add
        ]
        return ops + [CommitOperationDelete(path_in_repo=p) for p in delete]

    def preupload(self, repo: RepoPlan, batches: list[list[Any]]) -> bool:
        """One preupload call and one LFS batch for the additions of all revisions of a repo, instead of one
        of each per commit. The Hub answers upload modes by path, so this is only done when every path
        that occurs in several revisions has the same inputs to that decision (size class, binary sample);
        otherwise (False) each commit asks for its own revision."""
        from huggingface_hub import CommitOperationAdd

        additions = [op for ops in batches for op in ops if isinstance(op, CommitOperationAdd)]
        classes: dict[str, set[tuple[bool, bool]]] = {}
        for op in additions:
            classes.setdefault(op.path_in_repo, set()).add(
                (op.upload_info.size >= LFS_SIZE_THRESHOLD, b"\0" in op.upload_info.sample)
            )
        if not additions or any(len(c) > 1 for c in classes.values()):
            return False
        # The same file in several revisions (main is the last epoch) is asked about and uploaded once.
        unique = {(op.path_in_repo, op.upload_info.sha256): op for op in additions}
        self.retrier.call(
            f"upload files of {repo.repo_id}",
            self.api.preupload_lfs_files,
            repo.repo_id,
            additions=list(unique.values()),
            repo_type=repo.repo_type,
            revision="main",
        )
        for op in additions:
            done = unique[(op.path_in_repo, op.upload_info.sha256)]
            op._upload_mode, op._should_ignore, op._is_uploaded = (
                done._upload_mode,
                done._should_ignore,
                done._is_uploaded,
            )
            # The remote oids came from main; our own diff decides what each revision changes, so
            # huggingface_hub must not drop an addition because it matches main's copy of that path.
            op._remote_oid = None
        return True

    def commit(
        self,
        repo: RepoPlan,
        plan: RevisionPlan,
        add: list[str],
        delete: list[str],
        parent: str,
        prepared: list[Any] | None = None,
    ) -> str:
        attempts = [prepared] if prepared is not None else []

        def attempt() -> str:
            # A retry builds fresh operations: huggingface_hub mutates them while committing.
            ops = attempts.pop() if attempts else self.operations(plan, add, delete)
            info = self.api.create_commit(
                repo.repo_id,
                ops,
                repo_type=repo.repo_type,
                revision=plan.revision,
                parent_commit=parent or None,  # NEW_MAIN: the new repo's first commit
                commit_message=f"{self.commit_prefix}: {plan.revision}",
            )
            return info.oid

        return self.retrier.call(f"commit to {repo.repo_id}@{plan.revision}", attempt)

    def create_branch(self, repo: RepoPlan, branch: str, commit: str) -> None:
        self.retrier.call(
            f"create branch {branch} of {repo.repo_id}",
            self.api.create_branch,
            repo.repo_id,
            repo_type=repo.repo_type,
            branch=branch,
            revision=commit or None,  # NEW_MAIN: main's head, the only commit of a new repo
            exist_ok=True,
        )

    # ------------------------------------------------------------ one repo

    def unchanged(self, repo: RepoPlan, result: RepoResult) -> bool:
        """The listing proves ``repo`` as planned (see the module docstring); recorded, no request."""
        head = (self.heads or {}).get((repo.repo_type, repo.repo_id))
        if head is None or head.fingerprint != repo.fingerprint or self.state.main_moved(repo, head.commit):
            return False
        result.diffs = [RevisionDiff(plan.revision, [], [], 0) for plan in repo.revisions]
        if not self.dry_run:
            self.state.record(repo, {"main": [head.commit, repo.main.digest]})
            result.verified = len(repo.revisions)
        return True

    def publish(self, repo: RepoPlan) -> RepoResult:
        result = RepoResult(repo.repo_id, repo.repo_type)
        if self.unchanged(repo, result):
            return result
        for attempt in range(MAX_REPLANS):
            try:
                self._publish_once(repo, result)
                if not self.dry_run:
                    self.verify(repo, result)
                return result
            except FatalHubError as error:  # the Hub is unusable: no re-plan, every worker stops
                result.status, result.error = "failed", str(error)
                return result
            except SecretSafeError as error:
                replan = error.status in REPLAN_STATUS or (error.status or 0) >= 500 or error.status is None
                if not replan or attempt == MAX_REPLANS - 1:
                    result.status, result.error = "failed", str(error)
                    return result
                log.info("%s: re-planning after %s", repo.repo_id, error)
            except Exception as error:  # a worker must report, never kill the pool
                if is_retryable(error) and attempt < MAX_REPLANS - 1:
                    continue
                result.status, result.error = "failed", self.retrier_scrub(f"{type(error).__name__}: {error}")
                return result
        return result

    def retrier_scrub(self, text: str) -> str:
        return scrub(text, self.retrier.token)

    def _publish_once(self, repo: RepoPlan, result: RepoResult) -> None:
        result.known = {}
        refs = self.refs(repo)
        created = refs is None
        if created:
            result.status = "created"
            if self.dry_run:
                self._dry_run_new(repo, result)
                return
            self.create_repo(repo)
            # Not read again: a repo this run just created holds only .gitattributes, and its first commit
            # to main goes without a parent commit (NEW_MAIN); the commit's answer gives main's new head.
            refs = {"main": NEW_MAIN}
        if refs.get("main") is None:
            raise SecretSafeError(f"{repo.repo_id} has no main branch to branch the epochs from")
        trees: dict[str, Tree] = {NEW_MAIN: {}} if created else {}
        result.diffs = self._diffs(repo, refs, trees)
        result.known = {
            d.revision: refs[d.revision] for d in result.diffs if not d.changed and d.revision in refs
        }
        if self.dry_run or not any(d.changed for d in result.diffs):
            if result.status != "created":
                result.status = "skipped"
            return
        self._write(repo, refs, result)
        if result.status != "created":
            result.status = "updated"

    def _dry_run_new(self, repo: RepoPlan, result: RepoResult) -> None:
        for plan in repo.write_order:  # every branch from the new repo's empty main
            add, _ = diff_tree(plan, {})
            size = sum(plan.files[p].size for p in add)
            result.diffs.append(RevisionDiff(plan.revision, add, [], size, plan.revision != "main"))

    def _diffs(self, repo: RepoPlan, refs: dict[str, str], trees: dict[str, Tree]) -> list[RevisionDiff]:
        """What each revision needs, read before any write, in write order (main last). A missing branch
        will be created from main's current head, before main's own commit."""
        diffs: list[RevisionDiff] = []
        for plan in repo.write_order:
            commit = refs.get(plan.revision)
            if commit is not None and self.state.verified(repo, plan, commit):
                diffs.append(RevisionDiff(plan.revision, [], [], 0))
                continue
            add, delete = diff_tree(plan, self._tree_cached(repo, commit or refs["main"], trees))
            diffs.append(
                RevisionDiff(plan.revision, add, delete, sum(plan.files[p].size for p in add), commit is None)
            )
        return diffs

    def _tree_cached(self, repo: RepoPlan, commit: str, trees: dict[str, Tree]) -> Tree:
        if commit not in trees:
            trees[commit] = self.tree(repo, commit)
        return trees[commit]

    def _write(self, repo: RepoPlan, refs: dict[str, str], result: RepoResult) -> None:
        plans = {plan.revision: plan for plan in repo.revisions}
        ops = {
            d.revision: self.operations(plans[d.revision], d.add, d.delete)
            for d in result.diffs
            if d.add or d.delete
        }
        prepared = self.preupload(repo, list(ops.values()))
        for diff in result.diffs:  # in write order: main last
            commit = refs.get(diff.revision, refs["main"])
            if diff.branch_missing:
                self.create_branch(repo, diff.revision, refs["main"])
                result.branches += 1
            if diff.add or diff.delete:
                new = self.commit(
                    repo,
                    plans[diff.revision],
                    diff.add,
                    diff.delete,
                    commit,
                    ops[diff.revision] if prepared else None,
                )
                result.commits += 1
                result.files_sent += len(diff.add)
                result.bytes_sent += diff.upload_bytes
                commit = new
            # The commit named its parent, whose tree was read (or is a new repo's empty one): the server
            # accepted exactly parent + diff, so the new head's tree is the planned one without reading it.
            result.known[diff.revision] = commit

    def verify(self, repo: RepoPlan, result: RepoResult) -> None:
        """Record every revision's head as verified: each one's tree was read and matched the plan, or is
        the server's answer to a commit of the diff against a tree that was read (parent-commit checked).
        No request: reading refs and trees again after writing cost a quarter of a first publish."""
        verified: dict[str, list[str]] = {}
        for plan in repo.revisions:
            commit = result.known.get(plan.revision)
            if not commit:
                raise SecretSafeError(f"verification: {repo.repo_id} has no known head for {plan.revision}")
            verified[plan.revision] = [commit, plan.digest]
        self.state.record(repo, verified)
        result.verified = len(verified)


LISTERS = {"model": "list_models", "dataset": "list_datasets", "space": "list_spaces"}


def read_heads(api: Any, retrier: Retrier, repos: list[RepoPlan]) -> Heads | None:
    """Main head and card fingerprint of every repo in the release's namespaces: one listing per repo
    type and namespace (pages of 1,000 repos), not one refs request per repo. None when the Hub refuses
    the listing: then every repo reads its own refs, as before."""
    heads: Heads = {}
    for repo_type, author in sorted({(r.repo_type, r.repo_id.split("/")[0]) for r in repos}):
        lister = getattr(api, LISTERS[repo_type])
        try:
            items = retrier.call(
                f"list the {repo_type}s of {author}",
                lambda lister=lister, author=author: list(lister(author=author, expand=["sha", "cardData"])),
            )
        except SecretSafeError as error:
            log.warning("%s; reading every repo's refs instead", error)
            return None
        for item in items:
            value = item.card_data.get(FINGERPRINT_KEY) if item.card_data is not None else None
            heads[(repo_type, item.id)] = Head(item.sha, None if value is None else str(value))
    return heads


def run_all(
    publisher: Publisher,
    repos: list[RepoPlan],
    concurrency: int,
    progress: Callable[[RepoResult], None] | None = None,
) -> list[RepoResult]:
    """Publish repos concurrently (each repo sequential); results in plan order."""
    results: dict[str, RepoResult] = {}
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="publish") as pool:
        futures = {pool.submit(publisher.publish, repo): repo for repo in repos}
        for future in as_completed(futures):
            result = future.result()
            results[f"{result.repo_type}:{result.repo_id}"] = result
            if progress is not None:
                progress(result)
    return [results[f"{r.repo_type}:{r.repo_id}"] for r in repos]
