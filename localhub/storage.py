"""On-disk storage of the local Hub: content-addressed blobs plus JSON metadata.

Layout under the root::

    blobs/<sha256[:2]>/<sha256>             file contents, addressed by sha256
    repos/<type>s/<namespace>/<name>/repo.json     refs (branches, tags) and settings
    repos/<type>s/<namespace>/<name>/commits/<sha>.json   immutable commit snapshots
    collections/<slug-id>.json               collections
    secret                                   key signing LFS upload URLs

Every commit stores its full tree (path -> blob entry), so any revision is a complete snapshot and
no history walk is needed to read a file. All metadata is written atomically (``common.io``), and
refs are only moved after the commit they point to is on disk: a crash never leaves a ref pointing
at nothing. Mutations of one repo hold that repo's lock, so commits are serialized, never
interleaved."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from common.errors import MassiveSFTError
from common.hub import LFS_SIZE_THRESHOLD
from common.io import read_json, write_bytes, write_json

REPO_TYPES = ("model", "dataset", "space")
COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
# The Hub's default .gitattributes: it is the content of every repo's initial commit.
GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z",
        "*.arrow",
        "*.bin",
        "*.bz2",
        "*.ckpt",
        "*.ftz",
        "*.gguf",
        "*.gz",
        "*.h5",
        "*.joblib",
        "*.lfs.*",
        "*.mlmodel",
        "*.model",
        "*.msgpack",
        "*.npy",
        "*.npz",
        "*.onnx",
        "*.ot",
        "*.parquet",
        "*.pb",
        "*.pickle",
        "*.pkl",
        "*.pt",
        "*.pth",
        "*.rar",
        "*.safetensors",
        "saved_model/**/*",
        "*.tar.*",
        "*.tar",
        "*.tflite",
        "*.tgz",
        "*.wasm",
        "*.xz",
        "*.zip",
        "*.zst",
        "*tfevents*",
    )
)
LFS_SUFFIXES = tuple(p[1:] for p in GITATTRIBUTES.split() if p.startswith("*.") and "*" not in p[1:])


class HubError(MassiveSFTError):
    """An error the server turns into an HTTP response the Hub clients understand."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def git_blob_sha1(data: bytes) -> str:
    """git's object id of a blob; the Hub's ETag/oid of regular (non-LFS) files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def wants_lfs(path: str, size: int, sample: bytes = b"") -> bool:
    """The Hub's upload mode: LFS for large files, the .gitattributes patterns and binary content."""
    if size == 0:
        return False
    name = path.rsplit("/", 1)[-1]
    if size >= LFS_SIZE_THRESHOLD or name.endswith(LFS_SUFFIXES) or "tfevents" in name:
        return True
    return b"\0" in sample


@dataclass(frozen=True)
class Entry:
    """A file in a commit's tree. ``oid`` is git's object id: of the content for regular files, of
    the pointer file for LFS files (what the Hub reports as ``oid``/``blobId``)."""

    sha256: str
    size: int
    lfs: bool
    oid: str

    @classmethod
    def of(cls, data: bytes, lfs: bool) -> Entry:
        sha256 = hashlib.sha256(data).hexdigest()
        return cls.for_blob(sha256, len(data), lfs, data)

    @classmethod
    def for_blob(cls, sha256: str, size: int, lfs: bool, data: bytes | None = None) -> Entry:
        if lfs:
            return cls(sha256, size, True, git_blob_sha1(lfs_pointer(sha256, size)))
        assert data is not None, "a regular file's oid needs its content"
        return cls(sha256, size, False, git_blob_sha1(data))

    def to_json(self) -> list[Any]:
        return [self.sha256, self.size, self.lfs, self.oid]

    @classmethod
    def from_json(cls, raw: list[Any]) -> Entry:
        return cls(raw[0], int(raw[1]), bool(raw[2]), raw[3])


@dataclass
class Commit:
    id: str
    parents: list[str]
    title: str
    message: str
    author: str
    date: str
    tree: dict[str, Entry]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "parents": self.parents,
            "title": self.title,
            "message": self.message,
            "author": self.author,
            "date": self.date,
            "tree": {path: entry.to_json() for path, entry in sorted(self.tree.items())},
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Commit:
        tree = {path: Entry.from_json(entry) for path, entry in raw["tree"].items()}
        return cls(raw["id"], raw["parents"], raw["title"], raw["message"], raw["author"], raw["date"], tree)


@dataclass
class Repo:
    """A repo's mutable part: settings and refs."""

    type: str
    id: str
    private: bool
    created_at: str
    branches: dict[str, str]
    tags: dict[str, str]
    sdk: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "id": self.id,
            "private": self.private,
            "created_at": self.created_at,
            "branches": self.branches,
            "tags": self.tags,
            "sdk": self.sdk,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Repo:
        return cls(
            raw["type"],
            raw["id"],
            raw["private"],
            raw["created_at"],
            raw["branches"],
            raw["tags"],
            raw.get("sdk"),
        )


@dataclass(frozen=True)
class Operation:
    """One line of a commit: ``kind`` is add, delete_file or delete_folder."""

    kind: str
    path: str
    entry: Entry | None = None


class UploadSink:
    """Streams an upload to a temp file, then accepts it as a blob only if it hashes as announced."""

    def __init__(self, storage: Storage):
        self.storage = storage
        fd, name = tempfile.mkstemp(dir=storage.root / "tmp")
        self.path = Path(name)
        self.handle = os.fdopen(fd, "wb")
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.size += len(chunk)
        self.handle.write(chunk)

    def finish(self, expected_sha256: str, expected_size: int | None) -> None:
        self.handle.close()
        sha256 = self.digest.hexdigest()
        if sha256 != expected_sha256:
            raise HubError(
                400,
                f"Uploaded content hashes to sha256 {sha256}, not the announced"
                f" {expected_sha256}: the upload was corrupted or the oid is wrong; upload again.",
            )
        if expected_size is not None and self.size != expected_size:
            raise HubError(400, f"Uploaded {self.size} bytes for {sha256}, expected {expected_size}.")
        target = self.storage.blob_path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path, target)

    def discard(self) -> None:
        self.handle.close()
        self.path.unlink(missing_ok=True)


def check_repo_id(repo_id: str) -> None:
    parts = repo_id.split("/")
    if (
        len(parts) != 2
        or not all(NAME_RE.match(p) for p in parts)
        or ".." in repo_id
        or repo_id.endswith(".git")
    ):
        raise HubError(
            400,
            f"Invalid repo id {repo_id!r}: expected 'namespace/name' with letters, digits,"
            " '-', '_' or '.' (at most 96 characters each).",
        )


def check_ref_name(name: str) -> None:
    if not REF_RE.match(name) or ".." in name or name.endswith((".lock", "/")) or COMMIT_SHA.match(name):
        raise HubError(400, f"Invalid branch or tag name {name!r}.")


def check_path(path: str) -> str:
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in path:
        raise HubError(400, f"Invalid path in repo {path!r}: use a relative POSIX path without '..'.")
    if parts[0] == ".git":
        raise HubError(400, f"Invalid path in repo {path!r}: '.git' is reserved.")
    return path


class Storage:
    """All repos, blobs and collections under one root directory."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).resolve()
        for sub in ("blobs", "repos", "collections", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        secret_path = self.root / "secret"
        if not secret_path.exists():
            write_bytes(secret_path, secrets.token_hex(32).encode())
        self.secret = secret_path.read_bytes()
        self._locks: dict[str, threading.RLock] = {}
        self._locks_guard = threading.Lock()
        self._commit_cache: dict[str, Commit] = {}

    # ---- blobs -------------------------------------------------------------------------------
    def blob_path(self, sha256: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise HubError(400, f"Invalid sha256 {sha256!r}.")
        return self.root / "blobs" / sha256[:2] / sha256

    def has_blob(self, sha256: str, size: int | None = None) -> bool:
        path = self.blob_path(sha256)
        return path.exists() and (size is None or path.stat().st_size == size)

    def read_blob(self, sha256: str) -> bytes:
        return self.blob_path(sha256).read_bytes()

    def put_bytes(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        if not self.has_blob(sha256, len(data)):
            write_bytes(self.blob_path(sha256), data)
        return sha256

    def new_upload(self) -> UploadSink:
        return UploadSink(self)

    # ---- repos -------------------------------------------------------------------------------
    def repo_dir(self, repo_type: str, repo_id: str) -> Path:
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"Invalid repo type {repo_type!r}: expected one of {', '.join(REPO_TYPES)}.")
        check_repo_id(repo_id)
        return self.root / "repos" / f"{repo_type}s" / repo_id

    def lock(self, repo_type: str, repo_id: str) -> threading.RLock:
        key = f"{repo_type}s/{repo_id}".lower()
        with self._locks_guard:
            return self._locks.setdefault(key, threading.RLock())

    def get_repo(self, repo_type: str, repo_id: str) -> Repo:
        path = self.repo_dir(repo_type, repo_id) / "repo.json"
        if not path.exists():
            raise HubError(404, f"Repository {repo_type}s/{repo_id} not found.", "RepoNotFound")
        return Repo.from_json(read_json(path))

    def save_repo(self, repo: Repo) -> None:
        write_json(self.repo_dir(repo.type, repo.id) / "repo.json", repo.to_json())

    def iter_repos(self, repo_type: str) -> Iterator[Repo]:
        for path in sorted((self.root / "repos" / f"{repo_type}s").glob("*/*/repo.json")):
            yield Repo.from_json(read_json(path))

    def create_repo(
        self, repo_type: str, repo_id: str, author: str, private: bool = False, sdk: str | None = None
    ) -> Repo:
        with self.lock(repo_type, repo_id):
            if (self.repo_dir(repo_type, repo_id) / "repo.json").exists():
                raise HubError(409, f"You already created this {repo_type} repo: {repo_id}")
            if self._case_insensitive_clash(repo_type, repo_id):
                raise HubError(409, f"A {repo_type} repo whose name differs only by case exists: {repo_id}")
            data = GITATTRIBUTES.encode()
            self.put_bytes(data)
            initial = self._write_commit(
                [], "initial commit", "", author, {".gitattributes": Entry.of(data, False)}
            )
            repo = Repo(repo_type, repo_id, private, now_iso(), {"main": initial.id}, {}, sdk)
            self.save_repo(repo)
            return repo

    def _case_insensitive_clash(self, repo_type: str, repo_id: str) -> bool:
        # Folder names only (no JSON reads): creating many repos stays cheap.
        wanted = repo_id.lower()
        return any(
            f"{p.parent.name}/{p.name}".lower() == wanted
            for p in (self.root / "repos" / f"{repo_type}s").glob("*/*")
            if (p / "repo.json").exists()
        )

    def delete_repo(self, repo_type: str, repo_id: str) -> None:
        with self.lock(repo_type, repo_id):
            self.get_repo(repo_type, repo_id)
            # Remove repo.json first: a crash midway leaves an unreachable folder, never a half repo.
            repo_dir = self.repo_dir(repo_type, repo_id)
            (repo_dir / "repo.json").unlink()
            shutil.rmtree(repo_dir, ignore_errors=True)

    # ---- commits -----------------------------------------------------------------------------
    def _commit_path(self, sha: str) -> Path:
        return self.root / "commits" / sha[:2] / f"{sha}.json"

    def get_commit(self, sha: str) -> Commit:
        if sha not in self._commit_cache:
            path = self._commit_path(sha)
            if not path.exists():
                raise HubError(404, f"Commit {sha} not found.", "RevisionNotFound")
            self._commit_cache[sha] = Commit.from_json(read_json(path))
        return self._commit_cache[sha]

    def _write_commit(
        self, parents: list[str], title: str, message: str, author: str, tree: dict[str, Entry]
    ) -> Commit:
        draft = Commit("", parents, title, message, author, now_iso(), tree)
        body = draft.to_json()
        body.pop("id")
        draft.id = hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()
        write_json(self._commit_path(draft.id), draft.to_json())
        self._commit_cache[draft.id] = draft
        return draft

    def resolve(self, repo: Repo, revision: str) -> str:
        """A branch, tag or commit sha (full, of this repo's history) to a commit sha."""
        for prefix in ("", "refs/heads/", "refs/tags/"):
            name = revision[len(prefix) :] if revision.startswith(prefix) else None
            if name is None:
                continue
            if prefix != "refs/tags/" and name in repo.branches:
                return repo.branches[name]
            if prefix != "refs/heads/" and name in repo.tags:
                return repo.tags[name]
        if (
            COMMIT_SHA.match(revision)
            and self._commit_path(revision).exists()
            and self._reachable(repo, revision)
        ):
            return revision
        raise HubError(
            404,
            f"Invalid rev id: {revision} (no branch, tag or commit of {repo.id} by that name)",
            "RevisionNotFound",
        )

    def _reachable(self, repo: Repo, sha: str) -> bool:
        heads = list(repo.branches.values()) + list(repo.tags.values())
        return any(sha == c.id for head in heads for c in self.history(head))

    def history(self, head: str) -> Iterator[Commit]:
        """First-parent history, newest first."""
        sha: str | None = head
        while sha:
            commit = self.get_commit(sha)
            yield commit
            sha = commit.parents[0] if commit.parents else None

    def commit(
        self,
        repo_type: str,
        repo_id: str,
        branch: str,
        operations: list[Operation],
        title: str,
        message: str,
        author: str,
        parent_commit: str | None = None,
    ) -> Commit:
        """Apply ``operations`` on top of ``branch``; 412 if ``parent_commit`` is no longer its head."""
        with self.lock(repo_type, repo_id):
            repo = self.get_repo(repo_type, repo_id)
            if branch not in repo.branches:
                raise HubError(
                    404,
                    f"Branch {branch!r} not found in {repo_id}: create it first"
                    " (create_branch) or commit to an existing branch.",
                    "RevisionNotFound",
                )
            head = repo.branches[branch]
            if parent_commit is not None and parent_commit != head:
                raise HubError(
                    412,
                    f"A commit has happened since. Please refresh and try again: parent commit"
                    f" {parent_commit} is not the head of {branch!r} ({head}).",
                )
            tree = apply_operations(self.get_commit(head).tree, operations)
            new = self._write_commit([head], title, message, author, tree)
            repo.branches[branch] = new.id
            self.save_repo(repo)
            return new

    def set_ref(
        self, repo_type: str, repo_id: str, kind: str, name: str, target: str | None, exist_ok: bool = False
    ) -> None:
        """Create (``target`` a sha) or delete (``target`` None) a branch or tag."""
        with self.lock(repo_type, repo_id):
            repo = self.get_repo(repo_type, repo_id)
            refs = repo.branches if kind == "branch" else repo.tags
            if target is None:
                if name not in refs:
                    raise HubError(
                        404, f"{kind.capitalize()} {name!r} not found in {repo_id}.", "RevisionNotFound"
                    )
                if kind == "branch" and name == "main":
                    raise HubError(403, "Cannot delete the default branch 'main'.")
                del refs[name]
            else:
                check_ref_name(name)
                if name in repo.branches or name in repo.tags:
                    raise HubError(409, f"Reference already exists: {name!r} in {repo_id}.")
                refs[name] = target
            self.save_repo(repo)

    # ---- collections -------------------------------------------------------------------------
    def collection_path(self, slug: str) -> Path:
        object_id = slug.rsplit("-", 1)[-1]
        if not re.fullmatch(r"[0-9a-f]{24}", object_id):
            raise HubError(404, f"Collection {slug!r} not found.")
        return self.root / "collections" / f"{object_id}.json"

    def iter_collections(self) -> Iterator[dict[str, Any]]:
        for path in sorted((self.root / "collections").glob("*.json")):
            yield read_json(path)


def apply_operations(tree: dict[str, Entry], operations: list[Operation]) -> dict[str, Entry]:
    new = dict(tree)
    for op in operations:
        if op.kind == "add":
            assert op.entry is not None
            clash = next((p for p in new if p.startswith(op.path + "/")), None)
            if clash:
                raise HubError(400, f"Cannot add file {op.path!r}: a folder of that name exists ({clash}).")
            new[op.path] = op.entry
        elif op.kind == "delete_file":
            if op.path not in new:
                raise HubError(
                    404, f"Cannot delete {op.path!r}: no such file in the parent commit.", "EntryNotFound"
                )
            del new[op.path]
        else:
            prefix = op.path.rstrip("/") + "/"
            doomed = [p for p in new if p.startswith(prefix)]
            if not doomed:
                raise HubError(
                    404,
                    f"Cannot delete folder {op.path!r}: no such folder in the parent commit.",
                    "EntryNotFound",
                )
            for path in doomed:
                del new[path]
    return new
