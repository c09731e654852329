"""The HTML pages a person opens: the index of repos, a repo page (files, branches and tags, the
rendered card) at ``/<repo>``, ``/datasets/<repo>``, ``/spaces/<repo>`` and ``.../tree/<rev>[/<path>]``,
and a collection (its items, linked to their pages) at ``/collections/<slug>``.

Everything shown comes from users (names, file names, cards): it is escaped, and the card's
Markdown is rendered with raw HTML disabled, so a card cannot inject markup or script."""

from __future__ import annotations

import re
from html import escape
from typing import Any
from urllib.parse import quote

from markdown_it import MarkdownIt

from localhub.hub import URL_PREFIX
from localhub.storage import Commit, Repo, Storage

INDEX_PAGE_SIZE = 200
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "table{border-collapse:collapse}td,th{padding:.2rem .8rem;border-bottom:1px solid #ddd;text-align:left}"
    "code,pre{background:#f4f4f4}pre{padding:.5rem;overflow:auto}.muted{color:#777}"
    "article{border:1px solid #ddd;padding:0 1rem;margin-top:1rem}"
)
FRONT_MATTER = re.compile(r"^---\s*\n.*?\n---\s*(\n|$)", re.S)
# commonmark with raw HTML off (escaped, not passed through); markdown-it refuses javascript:/data: links.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")


def render_card(text: str) -> str:
    """A README as safe HTML: front matter dropped, Markdown rendered, raw HTML escaped."""
    return _MARKDOWN.render(FRONT_MATTER.sub("", text, count=1))


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )


def _href(root: str, action: str = "", revision: str = "", path: str = "") -> str:
    """A link to a repo (``root`` = prefix + id), one of its revisions (``action`` tree or resolve) and a
    path in it; the revision is one URL segment (``release/v1`` is sent as ``release%2Fv1``)."""
    url = "/" + quote(root, safe="/")
    if action:
        url += f"/{action}/{quote(revision, safe='')}"
    if path:
        url += "/" + quote(path, safe="/")
    return escape(url, quote=True)


def index_page(repos: list[Repo], base: str, page: int = 1) -> str:
    """One page of ``INDEX_PAGE_SIZE`` repos (a study has thousands), with links to the others."""
    pages = max(1, -(-len(repos) // INDEX_PAGE_SIZE))
    shown = repos[(page - 1) * INDEX_PAGE_SIZE : page * INDEX_PAGE_SIZE]
    rows = "".join(
        f"<tr><td>{r.type}</td><td><a href='{_href(URL_PREFIX[r.type] + r.id)}'>{escape(r.id)}</a></td>"
        f"<td>{len(r.branches)}</td><td>{'private' if r.private else 'public'}</td></tr>"
        for r in shown
    )
    nav = " ".join(
        f"<b>{n}</b>" if n == page else f"<a href='/?page={n}'>{n}</a>" for n in range(1, pages + 1)
    )
    body = (
        f"<h1>localhub</h1><p>Use it with <code>HF_ENDPOINT={escape(base)} HF_HUB_DISABLE_XET=1</code>"
        f" (see docs/localhub.md).</p><p class='muted'>{len(repos)} repos you may read.</p>"
        f"<table><tr><th>type</th><th>repo</th><th>branches</th><th>visibility</th></tr>{rows}</table>"
        + (f"<p>pages: {nav}</p>" if pages > 1 else "")
    )
    return _page("localhub", body)


def repo_page(
    storage: Storage, repo: Repo, revision: str, sha: str, folder: str, items: list[dict[str, Any]]
) -> str:
    root = URL_PREFIX[repo.type] + repo.id
    crumbs = f"<a href='{_href(root, 'tree', revision)}'>{escape(repo.id)}</a>" + "".join(
        f" / <a href='{_href(root, 'tree', revision, '/'.join(folder.split('/')[: i + 1]))}'>{escape(part)}</a>"
        for i, part in enumerate(folder.split("/") if folder else [])
    )
    body = (
        f"<p class='muted'>{repo.type}{' · private' if repo.private else ''}</p><h1>{crumbs}</h1>"
        f"<p>revision <code>{escape(revision)}</code> = commit <code>{sha[:12]}</code></p>"
        + _refs_table(repo, root)
        + _files_table(items, root, revision)
        + (_card(storage, storage.get_commit(sha)) if not folder else "")
    )
    return _page(f"{repo.id} · localhub", body)


def _refs_table(repo: Repo, root: str) -> str:
    rows = "".join(
        f"<tr><td>{kind}</td><td><a href='{_href(root, 'tree', name)}'>{escape(name)}</a></td>"
        f"<td><code>{sha[:12]}</code></td></tr>"
        for kind, refs in (("branch", repo.branches), ("tag", repo.tags))
        for name, sha in sorted(refs.items())
    )
    return f"<h2>Branches and tags</h2><table>{rows}</table>"


def _files_table(items: list[dict[str, Any]], root: str, revision: str) -> str:
    rows = []
    for item in items:
        name = item["path"].rsplit("/", 1)[-1]
        if item["type"] == "directory":
            link, size = _href(root, "tree", revision, item["path"]), ""
        else:
            link, size = _href(root, "resolve", revision, item["path"]), f"{item['size']:,} B"
        mark = "/" if item["type"] == "directory" else ""
        rows.append(f"<tr><td><a href='{link}'>{escape(name)}{mark}</a></td><td>{size}</td></tr>")
    return f"<h2>Files</h2><table>{''.join(rows)}</table>"


def _card(storage: Storage, commit: Commit) -> str:
    entry = commit.tree.get("README.md")
    if entry is None:
        return "<p class='muted'>No README.md (model card) at this revision.</p>"
    text = storage.read_blob(entry.sha256).decode("utf-8", errors="replace")
    return f"<article>{render_card(text)}</article>"


def collection_page(collection: dict[str, Any]) -> str:
    """A collection's title, description and items; repo items link to their pages, others are named."""
    rows = []
    for item in sorted(collection["items"], key=lambda i: i.get("position", 0)):
        kind, item_id = str(item["type"]), str(item["id"])
        prefix = URL_PREFIX.get(kind, "collections/" if kind == "collection" else None)
        name = (
            f"<a href='{_href(prefix + item_id)}'>{escape(item_id)}</a>"
            if prefix is not None
            else escape(item_id)
        )
        note = escape(str((item.get("note") or {}).get("text", "")))
        rows.append(f"<tr><td>{escape(kind)}</td><td>{name}</td><td>{note}</td></tr>")
    body = (
        f"<p class='muted'>collection by {escape(str(collection['owner']))}"
        f"{' · private' if collection.get('private') else ''}</p><h1>{escape(str(collection['title']))}</h1>"
        f"<p>{escape(str(collection.get('description') or ''))}</p>"
        f"<table><tr><th>type</th><th>item</th><th>note</th></tr>{''.join(rows)}</table>"
    )
    return _page(f"{collection['title']} · localhub", body)
