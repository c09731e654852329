"""The release as desired state: repos, their revisions and the exact files (with sha256 and git blob
sha) each revision must hold. ``publish`` diffs this against the Hub per (repo, revision) and commits
only the difference, so a re-run of an unchanged release makes no commit and a killed run resumes."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from common.io import read_json, stable_hash, write_json
from common.submissions import SUBMISSIONS_DIR
from release.cards import ModelResults, base_model_card, model_card, space_readme
from release.config import ReleaseConfig
from release.inputs import Checkpoint, ModelGroup, ReleaseInputs
from release.merge import require_merged

# Files of an epoch folder that are not part of the published model.
SKIP_NAMES = frozenset({"run.json", "README.md", "training_args.bin", ".gitattributes"})
SKIP_DIRS = frozenset({"__pycache__", ".git", ".ipynb_checkpoints", "tests"})
# run.json keys that are paths on the training machine: meaningless (and private) on the Hub.
LOCAL_KEYS = ("base_model_path", "data_path")
KEEP_REMOTE = frozenset({".gitattributes"})
# Remote folders a publish never deletes: the scores the submissions queue adds to the results dataset.
KEEP_REMOTE_DIRS = (f"{SUBMISSIONS_DIR}/",)


def kept_remote(path: str) -> bool:
    """A file of the repo that the release leaves as it is, though it does not publish it."""
    return path in KEEP_REMOTE or path.startswith(KEEP_REMOTE_DIRS)


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class LocalFile:
    path: str  # path in the repo
    size: int
    sha256: str
    git_sha1: str  # what the Hub's tree shows as blob id for a regular (non-LFS) file
    source: str | None = None  # a file on disk, or
    data: bytes | None = field(default=None, repr=False)  # generated content

    def summary(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


class HashCache:
    """sha256 + git sha1 of files on disk, cached by (path, size, mtime) so a re-run reads nothing twice."""

    def __init__(self, path: Path | None) -> None:
        self.path, self.lock, self.dirty = path, threading.Lock(), False
        self.entries: dict[str, list[Any]] = read_json(path) if path and path.exists() else {}

    def file(self, source: Path, path_in_repo: str) -> LocalFile:
        stat = source.stat()
        key = str(source.resolve())
        with self.lock:
            cached = self.entries.get(key)
        if cached and cached[0] == stat.st_size and cached[1] == stat.st_mtime_ns:
            return LocalFile(path_in_repo, stat.st_size, cached[2], cached[3], source=str(source))
        sha256, sha1 = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % stat.st_size)
        with open(source, "rb") as handle:
            while chunk := handle.read(1 << 20):
                sha256.update(chunk)
                sha1.update(chunk)
        with self.lock:
            self.entries[key] = [stat.st_size, stat.st_mtime_ns, sha256.hexdigest(), sha1.hexdigest()]
            self.dirty = True
        return LocalFile(path_in_repo, stat.st_size, sha256.hexdigest(), sha1.hexdigest(), source=str(source))

    def save(self) -> None:
        if self.path is not None and self.dirty:
            write_json(self.path, self.entries)


def generated(path: str, data: bytes | str) -> LocalFile:
    data = data.encode("utf-8") if isinstance(data, str) else data
    return LocalFile(path, len(data), hashlib.sha256(data).hexdigest(), git_blob_sha1(data), data=data)


@dataclass
class RevisionPlan:
    revision: str
    files: dict[str, LocalFile]

    @property
    def digest(self) -> str:
        return stable_hash({p: f.sha256 for p, f in self.files.items()}, 16)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files.values())


@dataclass
class RepoPlan:
    repo_id: str
    repo_type: str  # "model" | "dataset" | "space"
    kind: str  # "model" | "base_model" | "results" | "space"
    revisions: list[RevisionPlan]  # "main" first; written last (see release/executor.py)
    fingerprint: str = ""  # of every revision's files; main's card carries it (see ``sealed``)

    @property
    def main(self) -> RevisionPlan:
        return self.revisions[0]

    @property
    def write_order(self) -> list[RevisionPlan]:
        """The branches first, main last: main's card claims the whole repo (its fingerprint), so no
        reader may see that claim before every branch holds what it claims."""
        return [*self.revisions[1:], self.main]

    def files_of(self, revision: str) -> dict[str, LocalFile]:
        return next((r.files for r in self.revisions if r.revision == revision), {})


# ---------------------------------------------------------------- fingerprint

FINGERPRINT_KEY = "release_fingerprint"  # the card metadata field of main's README


def with_metadata(card: bytes, key: str, value: str) -> bytes:
    """``card`` with ``key: value`` appended to its YAML front matter (one is added if it has none)."""
    line = yaml.safe_dump({key: value}, default_flow_style=False).encode("utf-8")  # quotes "0123" etc.
    if card.startswith(b"---\n"):
        end = card.find(b"\n---", 3)
        if end != -1:
            return card[: end + 1] + line + card[end + 1 :]
    return b"---\n" + line + b"---\n" + card


def sealed(repo: RepoPlan) -> RepoPlan:
    """``repo`` with its fingerprint (every revision's digest, main's README as planned) written into
    main's card metadata: one listing of every repo's main card then proves a whole repo unchanged
    without reading its refs or trees (see ``Publisher.unchanged``)."""
    fingerprint = stable_hash({r.revision: r.digest for r in repo.revisions}, 32)
    readme = repo.main.files.get("README.md")
    card = b"" if readme is None else readme.data or Path(str(readme.source)).read_bytes()
    files = {
        **repo.main.files,
        "README.md": generated("README.md", with_metadata(card, FINGERPRINT_KEY, fingerprint)),
    }
    return replace(
        repo, revisions=[RevisionPlan("main", files), *repo.revisions[1:]], fingerprint=fingerprint
    )


# ---------------------------------------------------------------- file sets


def folder_files(
    folder: Path, hashes: HashCache, prefix: str = "", skip: frozenset[str] = SKIP_NAMES
) -> dict[str, LocalFile]:
    files = {}
    for source in sorted(folder.rglob("*")):
        relative = source.relative_to(folder)
        if (
            not source.is_file()
            or relative.name in skip
            or any(part.startswith(".") for part in relative.parts)
            or any(part in SKIP_DIRS for part in relative.parts)
            or source.suffix == ".pyc"
        ):
            continue
        path = f"{prefix}{relative.as_posix()}"
        files[path] = hashes.file(source, path)
    return files


def _public_record(record: dict[str, Any]) -> bytes:
    public = {k: v for k, v in record.items() if k not in LOCAL_KEYS}
    return (json.dumps(public, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")


def _adapter_config(folder: Path, base_repo: str) -> bytes:
    """Point the adapter at the published base so ``AutoPeftModelForCausalLM`` loads it from the Hub."""
    config = read_json(folder / "adapter_config.json")
    config["base_model_name_or_path"] = base_repo
    return (json.dumps(config, indent=2, sort_keys=True) + "\n").encode("utf-8")


def checkpoint_files(
    group: ModelGroup,
    checkpoint: Checkpoint,
    inputs: ReleaseInputs,
    config: ReleaseConfig,
    hashes: HashCache,
    results: ModelResults,
) -> dict[str, LocalFile]:
    files: dict[str, LocalFile] = {}
    if checkpoint.folder is not None:
        files = folder_files(checkpoint.folder, hashes)
        files["run.json"] = generated("run.json", _public_record(checkpoint.record))
        if checkpoint.is_adapter:
            files["adapter_config.json"] = generated(
                "adapter_config.json", _adapter_config(checkpoint.folder, group.base_repo)
            )
            if config.include.merged_lora:
                files.update(folder_files(require_merged(inputs, checkpoint), hashes, prefix="merged/"))
    card = model_card(group=group, checkpoint=checkpoint, config=config, results=results, mode=inputs.mode)
    files["README.md"] = generated("README.md", card)
    return files


def model_repo_plan(
    group: ModelGroup, inputs: ReleaseInputs, config: ReleaseConfig, hashes: HashCache, results: ModelResults
) -> RepoPlan:
    """Pure: reads the checkpoints (and merged folders the merge step built), writes nothing."""
    revisions = [
        RevisionPlan(c.revision, checkpoint_files(group, c, inputs, config, hashes, results))
        for c in group.checkpoints
    ]
    main = RevisionPlan("main", dict(revisions[-1].files))
    return sealed(RepoPlan(group.repo_id, "model", "model", [main, *revisions]))


def base_repo_plan(base: Any, config: ReleaseConfig, hashes: HashCache) -> RepoPlan:
    files = folder_files(base.folder, hashes)
    files["README.md"] = generated("README.md", base_model_card(base=base, config=config))
    return sealed(RepoPlan(base.repo_id, "model", "base_model", [RevisionPlan("main", files)]))


def results_repo_plan(folder: Path, config: ReleaseConfig, hashes: HashCache) -> RepoPlan:
    files = folder_files(folder, hashes, skip=frozenset({".gitattributes"}))
    return sealed(RepoPlan(config.results_repo(), "dataset", "results", [RevisionPlan("main", files)]))


def space_repo_plan(
    space_dir: Path, config: ReleaseConfig, hashes: HashCache, endpoint: str | None
) -> RepoPlan:
    """The Space: the app package under ``space/``, the shared ``common/`` modules it imports, a root
    ``app.py`` entry point, requirements, README metadata and where to read the results (no token).
    ``endpoint`` is stored only for a Hub other than the default one; a staged Space has none, since the
    staging server's port changes with every run (and a changing file would make every re-stage commit)."""
    if not (space_dir / "app.py").exists():
        raise FileNotFoundError(
            f"the Space source {space_dir}/app.py does not exist; set space_dir in the "
            "release config or turn include.space off"
        )
    files = folder_files(space_dir, hashes, prefix="space/")
    common = space_dir.parent / "common"
    if common.is_dir():
        files.update(folder_files(common, hashes, prefix="common/"))
    if (space_dir / "requirements.txt").exists():
        files["requirements.txt"] = hashes.file(space_dir / "requirements.txt", "requirements.txt")
    files["app.py"] = generated("app.py", SPACE_ENTRY)
    files["space_config.json"] = generated(
        "space_config.json",
        json.dumps(
            {
                "repo": config.results_repo(),
                "revision": "main",
                "title": config.collection_title,
                **({"endpoint": endpoint} if endpoint else {}),
            },
            indent=2,
        )
        + "\n",
    )
    files["README.md"] = generated("README.md", space_readme(config=config))
    return sealed(RepoPlan(config.space_repo(), "space", "space", [RevisionPlan("main", files)]))


SPACE_ENTRY = '''"""Space entry point (app_file: app.py). ``space_config.json`` names the results dataset that
``space/app.py`` reads and the page title; Space variables (SPACE_RESULTS_REPO, SPACE_RESULTS_REVISION,
HF_ENDPOINT, SPACE_TITLE) override them."""

import json
import os
import runpy
from pathlib import Path

_here = Path(__file__).resolve().parent
_config = json.loads((_here / "space_config.json").read_text())
os.environ.setdefault("SPACE_RESULTS_REPO", _config["repo"])
os.environ.setdefault("SPACE_RESULTS_REVISION", _config["revision"])
if _config.get("endpoint"):
    os.environ.setdefault("HF_ENDPOINT", _config["endpoint"])
os.environ.setdefault("SPACE_TITLE", _config.get("title", ""))
runpy.run_path(str(_here / "space" / "app.py"), run_name="__main__")
'''


def plan_summary(plans: list[RepoPlan]) -> dict[str, Any]:
    return {
        "repos": [
            {
                "repo_id": p.repo_id,
                "repo_type": p.repo_type,
                "kind": p.kind,
                "revisions": [
                    {
                        "revision": r.revision,
                        "digest": r.digest,
                        "size": r.size,
                        "files": [f.summary() for f in r.files.values()],
                    }
                    for r in p.revisions
                ],
            }
            for p in plans
        ]
    }
