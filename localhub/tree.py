"""Tree listings, paths-info, last commits per path and model-card metadata, in the JSON shapes
huggingface_hub parses (``RepoFile``, ``RepoFolder``, ``LastCommitInfo``)."""

from __future__ import annotations

import hashlib
import re
from typing import Any, TypeVar
from urllib.parse import urlencode

import yaml
from fastapi import Request, Response

from localhub.storage import Commit, Entry, HubError, Storage, lfs_pointer

T = TypeVar("T")
FRONT_MATTER = re.compile(r"^---\s*\n(.*?)\n---\s*(\n|$)", re.S)


def tree_entry(path: str, entry: Entry) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "file", "oid": entry.oid, "size": entry.size, "path": path}
    if entry.lfs:
        item["lfs"] = {
            "oid": entry.sha256,
            "size": entry.size,
            "pointerSize": len(lfs_pointer(entry.sha256, entry.size)),
        }
    return item


def folder_entry(tree: dict[str, Entry], folder: str) -> dict[str, Any]:
    # A folder's oid only has to change when its content does: hash its (path, oid) listing.
    listing = "".join(f"{p}\0{e.oid}\n" for p, e in sorted(tree.items()) if p.startswith(folder + "/"))
    return {"type": "directory", "oid": hashlib.sha1(listing.encode()).hexdigest(), "size": 0, "path": folder}


def folders_of(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def list_tree(storage: Storage, sha: str, folder: str, recursive: bool, expand: bool) -> list[dict[str, Any]]:
    tree = storage.get_commit(sha).tree
    prefix = folder + "/" if folder else ""
    files = [p for p in tree if p.startswith(prefix)]
    if folder and not files:
        raise HubError(404, f"Folder {folder!r} not found at {sha}.", "EntryNotFound")
    depth = prefix.count("/")
    folders = sorted(
        {
            f
            for p in files
            for f in folders_of(p)
            if f.startswith(prefix) and (recursive or f.count("/") == depth)
        }
    )
    if not recursive:
        files = [p for p in files if p.count("/") == depth]
    items = [folder_entry(tree, f) for f in folders] + [tree_entry(p, tree[p]) for p in sorted(files)]
    items.sort(key=lambda item: item["path"])
    return _expanded(storage, sha, items) if expand else items


def path_info(storage: Storage, sha: str, paths: list[str], expand: bool) -> list[dict[str, Any]]:
    tree = storage.get_commit(sha).tree
    folders = {f for p in tree for f in folders_of(p)}
    items = []
    for path in paths:
        path = path.strip("/")
        if path in tree:
            items.append(tree_entry(path, tree[path]))
        elif path in folders:
            items.append(folder_entry(tree, path))
    return _expanded(storage, sha, items) if expand else items


def _expanded(storage: Storage, sha: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    last = last_commits(storage, sha, [item["path"] for item in items])
    for item in items:
        commit = last.get(item["path"])
        if commit is not None:
            item["lastCommit"] = {"id": commit.id, "title": commit.title, "date": commit.date}
        if item["type"] == "file":
            # The local Hub scans nothing: say so rather than pretend a scan ran.
            item["securityFileStatus"] = {
                "status": "unscanned",
                "avScan": {"virusFound": False},
                "pickleImportScan": {"highestSafetyLevel": "innocuous", "imports": []},
            }
    return items


def last_commits(storage: Storage, head: str, paths: list[str]) -> dict[str, Commit]:
    """For each path (file or folder), the newest commit of the first-parent history that changed it."""
    found: dict[str, Commit] = {}
    pending = set(paths)
    for commit in storage.history(head):
        if not pending:
            break
        parent = storage.get_commit(commit.parents[0]).tree if commit.parents else {}
        changed = {p for p in set(commit.tree) | set(parent) if commit.tree.get(p) != parent.get(p)}
        touched = changed | {f for p in changed for f in folders_of(p)}
        for path in pending & touched:
            found[path] = commit
        pending -= touched
    return found


class NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors/aliases: a card is untrusted, and a few nested aliases ("billion laughs")
    expand to gigabytes once the metadata is serialized as JSON."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("YAML aliases (*name) are not allowed in card metadata")
        return super().compose_node(parent, index)


def load_front_matter(text: str) -> Any:
    """The YAML between the leading ``---`` lines (``None`` without one); raises ``yaml.YAMLError``."""
    match = FRONT_MATTER.match(text)
    if not match:
        return None
    try:
        return yaml.load(match.group(1), Loader=NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError as err:
        raise yaml.YAMLError("card metadata is nested too deeply") from err


def card_data(storage: Storage, commit: Commit) -> dict[str, Any] | None:
    """The YAML front matter of README.md, as the Hub exposes it in ``cardData``."""
    entry = commit.tree.get("README.md")
    if entry is None:
        return None
    text = storage.read_blob(entry.sha256).decode("utf-8", errors="replace")
    try:
        meta = load_front_matter(text)
    except yaml.YAMLError:
        return None
    return meta if isinstance(meta, dict) else None


def paginate(items: list[T], request: Request, response: Response, cursor: int, limit: int) -> list[T]:
    """One page, with a GitHub-style ``Link: <...>; rel="next"`` header when more remain."""
    limit = max(1, limit)
    page = items[cursor : cursor + limit]
    if cursor + limit < len(items):
        # From the raw (still encoded, ASCII) path: the decoded one may hold characters a header cannot.
        raw_path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
        # Every value of a repeated parameter (``expand=sha&expand=cardData``), not only the last one.
        kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("cursor", "limit")]
        query = urlencode([*kept, ("cursor", cursor + limit), ("limit", limit)])
        base = str(request.base_url).rstrip("/")
        response.headers["Link"] = f'<{base}{raw_path}?{query}>; rel="next"'
    return page
