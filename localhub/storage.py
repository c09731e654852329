"""On-disk storage of the local Hub: content-addressed blobs plus JSON metadata.

Layout under the root::

    blobs/<sha256[:2]>/<sha256>             file contents, addressed by sha256
    repos/<type>s/<namespace>/<name>/repo.json     refs (branches, tags) and settings
    repos/<type>s/<namespace>/<name>/commits/<sha>.json   immutable commit snapshots
    repos/<type>s/<namespace>/<name>/lfs/<sha256>  LFS objects uploaded to this repo, not yet committed
    collections/<slug-id>.json               collections
    secret                                   key signing LFS upload URLs (0600)

Every folder above and the secret are readable by the server's user only (0700/0600): a private repo's
content must not be readable by other accounts of the machine either.
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
from localhub.names import valid_name

REPO_TYPES = ("model", "dataset", "space")
COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
# huggingface_hub accepts 5 to 40 hex digits as parent_commit (REGEX_COMMIT_OID); so does the server.
SHORT_SHA = re.compile(r"^[0-9a-fA-F]{5,40}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
# First URL segments of the server's own pages and routes: a namespace of that name would shadow them.
RESERVED_NAMESPACES = frozenset({"api", "datasets", "spaces", "models", "collections", "health", "settings"})
MAX_PATH_CHARS = 1000
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
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
    """One line of a commit: ``kind`` is add, delete_file or delete_folder. ``data`` is the content
    of a regular file, stored only once the whole commit is known to apply."""

    kind: str
    path: str
    entry: Entry | None = None
    data: bytes | None = None


def private_file(directory: Path) -> tuple[Path, Any]:
    """A new temp file in ``directory`` readable by the server's user only (mkstemp: 0600)."""
    fd, name = tempfile.mkstemp(dir=directory)
    return Path(name), os.fdopen(fd, "wb")


class UploadSink:
    """Streams an upload to a temp file, then accepts it as a blob only if it hashes as announced.
    More bytes than announced are refused as they arrive (413), so an upload cannot fill the disk."""

    def __init__(self, storage: Storage, max_size: int | None = None):
        self.storage = storage
        self.path, self.handle = private_file(storage.root / "tmp")
        self.digest = hashlib.sha256()
        self.size = 0
        self.max_size = max_size

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.max_size is not None and self.size > self.max_size:
            raise HubError(413, f"Upload is larger than its announced size ({self.max_size} bytes).")
        self.digest.update(chunk)
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
        self.storage.adopt_blob(self.path, sha256)

    def discard(self) -> None:
        self.handle.close()
        self.path.unlink(missing_ok=True)


def _check_no_file_folder_clash(tree: dict[str, Entry]) -> None:
    """A file and a folder of the same name cannot coexist in one revision (git cannot store it)."""
    for path in tree:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in tree:
                raise HubError(
                    400,
                    f"Cannot have both a file {folder!r} and a folder of that name (for {path!r})"
                    " in one revision: delete one of them in the same commit.",
                )


def check_repo_id(repo_id: str) -> None:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(valid_name(p) for p in parts) or repo_id.endswith(".git"):
        raise HubError(
            400,
            f"Invalid repo id {repo_id[:200]!r}: expected 'namespace/name', each with letters, digits,"
            " '-', '_' or '.' (at most 96 characters, starting and ending with a letter or digit, no"
            " '--' or '..', not ending in '.git').",
        )


def check_new_namespace(namespace: str) -> None:
    if namespace.lower() in RESERVED_NAMESPACES:
        raise HubError(400, f"Invalid namespace {namespace!r}: it is reserved for the server's own pages.")


def check_ref_name(name: str) -> None:
    """git's ref name rules, narrowed like the Hub's: no control characters, spaces, '..', '//',
    components starting with '.' or ending in '.lock', and not a commit sha."""
    components = name.split("/")
    if (
        not REF_RE.match(name)
        or ".." in name
        or any(not c or c.startswith(".") or c.endswith(".lock") for c in components)
        or COMMIT_SHA.match(name)
    ):
        raise HubError(
            400,
            f"Invalid branch or tag name {name[:200]!r}: use letters, digits, '.', '_', '-' and '/'"
            " (at most 200 characters; no '..', no empty or '.'-prefixed component, not a commit sha).",
        )


def check_path(path: str) -> str:
    parts = path.split("/")
    if not path or path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise HubError(400, f"Invalid path in repo {path[:200]!r}: use a relative POSIX path without '..'.")
    if CONTROL_CHARS.search(path):
        raise HubError(400, f"Invalid path in repo {path[:200]!r}: control characters are not allowed.")
    if len(path) > MAX_PATH_CHARS:
        raise HubError(400, f"Invalid path in repo: longer than {MAX_PATH_CHARS} characters.")
    if parts[0] == ".git":
        raise HubError(400, f"Invalid path in repo {path!r}: '.git' is reserved.")
    return path


class Storage:
    """All repos, blobs and collections under one root directory. One server process owns a root:
    the repo index below is kept in memory and updated by this object's own writes."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        for sub in ("blobs", "tmp", "commits", "repos", "collections"):
            (self.root / sub).mkdir(mode=0o700, exist_ok=True)
            (self.root / sub).chmod(0o700)  # also tightens roots created by older versions
        secret_path = self.root / "secret"
        if not secret_path.exists():
            path, handle = private_file(self.root / "tmp")
            with handle:
                handle.write(secrets.token_hex(32).encode())
            os.replace(path, secret_path)
        secret_path.chmod(0o600)
        self.secret = secret_path.read_bytes()
        self._locks: dict[str, threading.RLock] = {}
        self._locks_guard = threading.Lock()
        self._commit_cache: dict[str, Commit] = {}
        self._index: dict[str, dict[str, Repo]] = {}  # repo type -> lower-case id -> repo
        self._index_lock = threading.Lock()
        self._scope_cache: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {}

    # ---- blobs -------------------------------------------------------------------------------
    def blob_path(self, sha256: str) -> Path:
        if not SHA256.match(sha256):
            raise HubError(400, f"Invalid sha256 {sha256[:100]!r}: expected 64 lower-case hex digits.")
        return self.root / "blobs" / sha256[:2] / sha256

    def has_blob(self, sha256: str, size: int | None = None) -> bool:
        path = self.blob_path(sha256)
        return path.exists() and (size is None or path.stat().st_size == size)

    def read_blob(self, sha256: str) -> bytes:
        return self.blob_path(sha256).read_bytes()

    def adopt_blob(self, path: Path, sha256: str) -> None:
        target = self.blob_path(sha256)
        target.parent.mkdir(mode=0o700, exist_ok=True)
        os.replace(path, target)

    def put_bytes(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        if not self.has_blob(sha256, len(data)):
            path, handle = private_file(self.root / "tmp")
            with handle:
                handle.write(data)
            self.adopt_blob(path, sha256)
        return sha256

    def new_upload(self, max_size: int | None = None) -> UploadSink:
        return UploadSink(self, max_size)

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
        with self._index_lock:
            self._repo_index(repo.type)[repo.id.lower()] = Repo.from_json(repo.to_json())

    def _repo_index(self, repo_type: str) -> dict[str, Repo]:
        """Every repo of a type, read from disk once; listings and name clashes use it (call with
        ``_index_lock`` held)."""
        if repo_type not in self._index:
            folder = self.root / "repos" / f"{repo_type}s"
            repos = (Repo.from_json(read_json(p)) for p in folder.glob("*/*/repo.json"))
            self._index[repo_type] = {r.id.lower(): r for r in repos}
        return self._index[repo_type]

    def iter_repos(self, repo_type: str) -> list[Repo]:
        """All repos of a type, sorted by id (snapshots: callers may not change them)."""
        with self._index_lock:
            return sorted(self._repo_index(repo_type).values(), key=lambda r: r.id)

    def create_repo(
        self, repo_type: str, repo_id: str, author: str, private: bool = False, sdk: str | None = None
    ) -> Repo:
        check_new_namespace(repo_id.split("/")[0])
        with self.lock(repo_type, repo_id):
            self._check_free(repo_type, repo_id)
            data = GITATTRIBUTES.encode()
            self.put_bytes(data)
            initial = self._write_commit(
                [], "initial commit", "", author, {".gitattributes": Entry.of(data, False)}
            )
            repo = Repo(repo_type, repo_id, private, now_iso(), {"main": initial.id}, {}, sdk)
            self.save_repo(repo)
            return repo

    def _check_free(self, repo_type: str, repo_id: str) -> None:
        if (self.repo_dir(repo_type, repo_id) / "repo.json").exists():
            raise HubError(409, f"You already created this {repo_type} repo: {repo_id}")
        with self._index_lock:
            if repo_id.lower() in self._repo_index(repo_type):
                raise HubError(409, f"A {repo_type} repo whose name differs only by case exists: {repo_id}")

    def delete_repo(self, repo_type: str, repo_id: str) -> None:
        with self.lock(repo_type, repo_id):
            self.get_repo(repo_type, repo_id)
            # Remove repo.json first: a crash midway leaves an unreachable folder, never a half repo.
            repo_dir = self.repo_dir(repo_type, repo_id)
            (repo_dir / "repo.json").unlink()
            with self._index_lock:
                self._repo_index(repo_type).pop(repo_id.lower(), None)
            shutil.rmtree(repo_dir, ignore_errors=True)

    def move_repo(self, repo_type: str, from_id: str, to_id: str) -> Repo:
        """Rename a repo (commits are shared by content, so only its folder moves)."""
        check_new_namespace(to_id.split("/")[0])
        first, second = sorted([from_id.lower(), to_id.lower()])
        with self.lock(repo_type, first), self.lock(repo_type, second):
            repo = self.get_repo(repo_type, from_id)
            if from_id == to_id:
                raise HubError(409, f"Cannot move {from_id} onto itself: the repo already exists there.")
            if from_id.lower() != to_id.lower():  # a change of case only is a rename in place
                self._check_free(repo_type, to_id)
            target = self.repo_dir(repo_type, to_id)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.repo_dir(repo_type, from_id), target)
            with self._index_lock:
                self._repo_index(repo_type).pop(from_id.lower(), None)
            repo.id = to_id
            self.save_repo(repo)
            return repo

    # ---- LFS objects of a repo ---------------------------------------------------------------
    def _staged_dir(self, repo: Repo) -> Path:
        return self.repo_dir(repo.type, repo.id) / "lfs"

    def stage_object(self, repo: Repo, sha256: str) -> None:
        """Record that ``sha256`` was uploaded to ``repo``, so that a commit of it may follow."""
        staged = self._staged_dir(repo)
        staged.mkdir(exist_ok=True)
        write_bytes(staged / self.blob_path(sha256).name, b"")

    def repo_objects(self, repo: Repo) -> frozenset[str]:
        """The blobs this repo may hand out: those its history references and those uploaded to it.
        An object stored for another repo is not among them, even with the same hash."""
        key = f"{repo.type}s/{repo.id}"
        heads = tuple(sorted(repo.branches.values())) + tuple(sorted(repo.tags.values()))
        cached = self._scope_cache.get(key)
        if cached is None or cached[0] != heads:
            seen: set[str] = set()
            for head in heads:
                for commit in self.history(head):
                    seen.update(entry.sha256 for entry in commit.tree.values())
            cached = (heads, frozenset(seen))
            self._scope_cache[key] = cached
        staged_dir = self._staged_dir(repo)
        staged = {p.name for p in staged_dir.iterdir()} if staged_dir.is_dir() else set()
        return cached[1] | staged

    # ---- commits -----------------------------------------------------------------------------
    def _commit_path(self, sha: str) -> Path:
        return self.root / "commits" / sha[:2] / f"{sha}.json"

    def get_commit(self, sha: str) -> Commit:
        if sha not in self._commit_cache:
            path = self._commit_path(sha)
            if not COMMIT_SHA.match(sha) or not path.exists():
                raise HubError(404, f"Commit {sha[:100]} not found.", "RevisionNotFound")
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
            f"Invalid rev id: {revision[:200]} (no branch, tag or commit of {repo.id} by that name)",
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
        """Apply ``operations`` on top of ``branch``; 412 if ``parent_commit`` (a full sha or a prefix
        of at least 5 hex digits, as the client accepts) is no longer its head. Nothing is written
        unless the whole commit applies."""
        with self.lock(repo_type, repo_id):
            repo = self.get_repo(repo_type, repo_id)
            if branch not in repo.branches:
                raise HubError(
                    404,
                    f"Branch {branch[:200]!r} not found in {repo_id}: create it first"
                    " (create_branch) or commit to an existing branch.",
                    "RevisionNotFound",
                )
            head = repo.branches[branch]
            if parent_commit is not None and not head.startswith(parent_commit):
                raise HubError(
                    412,
                    f"A commit has happened since. Please refresh and try again: parent commit"
                    f" {parent_commit} is not the head of {branch!r} ({head}).",
                )
            tree = apply_operations(self.get_commit(head).tree, operations)
            for op in operations:
                if op.data is not None:
                    self.put_bytes(op.data)
            new = self._write_commit([head], title, message, author, tree)
            repo.branches[branch] = new.id
            self.save_repo(repo)
            self._forget_staged(repo, operations)
            return new

    def _forget_staged(self, repo: Repo, operations: list[Operation]) -> None:
        # Committed objects are in the history now: their upload records are no longer needed.
        staged = self._staged_dir(repo)
        for op in operations:
            if op.entry is not None and op.entry.lfs:
                (staged / op.entry.sha256).unlink(missing_ok=True)

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
                        404, f"{kind.capitalize()} {name[:200]!r} not found in {repo_id}.", "RevisionNotFound"
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
            raise HubError(404, f"Collection {slug[:200]!r} not found.")
        return self.root / "collections" / f"{object_id}.json"

    def iter_collections(self) -> Iterator[dict[str, Any]]:
        for path in sorted((self.root / "collections").glob("*.json")):
            yield read_json(path)


def apply_operations(tree: dict[str, Entry], operations: list[Operation]) -> dict[str, Entry]:
    new = dict(tree)
    for op in operations:
        if op.kind == "add":
            assert op.entry is not None
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
    _check_no_file_folder_clash(new)
    return new
