"""``GET /api/{models,datasets,spaces}``: the repo listings, with the Hub's ``expand`` properties.

A client that needs one property of many repos (the release publisher: every repo's main head and card
metadata) asks for it in one listing, ``?author=NS&expand=sha&expand=cardData``, pages of at most 1,000
repos linked by a ``Link: rel="next"`` header, instead of one request per repo. As on the Hub, an entry
with ``expand`` holds ``_id``, ``id`` and exactly the requested properties, and an unknown property is a
400. Without ``expand`` the entry keeps the short default shape (id, private, createdAt, sha)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from localhub.storage import Commit, HubError, Repo, Storage
from localhub.tree import card_data

PAGE_SIZE = 1000  # the Hub's largest listing page

Property = Callable[[Storage, Repo, Commit], Any]


def _card(storage: Storage, repo: Repo, commit: Commit) -> Any:
    return card_data(storage, commit)


def _tags(storage: Storage, repo: Repo, commit: Commit) -> list[str]:
    card = card_data(storage, commit) or {}
    tags = card.get("tags") or []
    return [str(t) for t in (tags if isinstance(tags, list) else [tags])]


# The properties this server knows; the Hub has more (downloads, likes, ...), answered here as zeros.
PROPERTIES: dict[str, Property] = {
    "author": lambda storage, repo, commit: repo.id.split("/")[0],
    "cardData": _card,
    "createdAt": lambda storage, repo, commit: repo.created_at,
    "disabled": lambda storage, repo, commit: False,
    "downloads": lambda storage, repo, commit: 0,
    "gated": lambda storage, repo, commit: False,
    "lastModified": lambda storage, repo, commit: commit.date,
    "likes": lambda storage, repo, commit: 0,
    "private": lambda storage, repo, commit: repo.private,
    "sdk": lambda storage, repo, commit: repo.sdk,
    "sha": lambda storage, repo, commit: commit.id,
    "siblings": lambda storage, repo, commit: [{"rfilename": p} for p in sorted(commit.tree)],
    "tags": _tags,
}


def check_expand(expand: list[str]) -> None:
    unknown = sorted(set(expand) - set(PROPERTIES))
    if unknown:
        raise HubError(
            400,
            f"Invalid expand value(s) {', '.join(repr(u[:50]) for u in unknown[:5])}: "
            f"expected any of {', '.join(sorted(PROPERTIES))}.",
        )


def list_entry(storage: Storage, repo: Repo, repo_id_key: str, expand: list[str]) -> dict[str, Any]:
    """One repo of a listing; ``repo_id_key`` is the signed ``_id``."""
    if not expand:
        return {
            "id": repo.id,
            "_id": repo_id_key,
            "private": repo.private,
            "createdAt": repo.created_at,
            "sha": repo.branches["main"],
        }
    commit = storage.get_commit(repo.branches["main"])
    entry: dict[str, Any] = {"_id": repo_id_key, "id": repo.id}
    for name in dict.fromkeys(expand):
        entry[name] = PROPERTIES[name](storage, repo, commit)
    if repo.type == "model":
        entry["modelId"] = repo.id
    return entry
