"""The pages a person opens on the local Hub (the URLs the pipeline prints and the Space links to):
readable HTML with files, branches and the rendered card, escaped because a card is untrusted input."""

from __future__ import annotations

import uuid

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi

from localhub import DEFAULT_USER, serve_in_background
from localhub.pages import INDEX_PAGE_SIZE
from localhub.storage import Storage

CARD = """---
license: apache-2.0
---
# Results of the study

| model | score |
|---|---|
| tiny | 0.5 |

<script>alert("card script")</script>
<img src=x onerror="alert('img')">
[click me](javascript:alert('link'))
"""


@pytest.fixture(scope="module")
def published(local_hub) -> dict[str, str]:
    api = HfApi(endpoint=local_hub.endpoint, token=local_hub.token)
    suffix = uuid.uuid4().hex[:8]
    repos = {"dataset": f"{DEFAULT_USER}/results-{suffix}", "model": f"{DEFAULT_USER}/model-{suffix}"}
    repos["space"] = f"{DEFAULT_USER}/board-{suffix}"
    for repo_type, repo_id in repos.items():
        api.create_repo(repo_id, repo_type=repo_type, space_sdk="gradio" if repo_type == "space" else None)
        files = [
            CommitOperationAdd("README.md", CARD.encode()),
            CommitOperationAdd("data/<i>odd & 100%.csv", b"a,b\n"),
        ]
        api.create_commit(repo_id, files, commit_message="card", repo_type=repo_type)
        api.create_branch(repo_id, branch="epoch-01", repo_type=repo_type)
        api.create_branch(repo_id, branch="release/v1.0", repo_type=repo_type)
    repos["private"] = api.create_repo(f"{DEFAULT_USER}/hidden-{suffix}", private=True).repo_id
    return repos


def page(local_hub, path: str) -> httpx.Response:
    response = httpx.get(f"{local_hub.endpoint}{path}")
    assert response.status_code == 200, (path, response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src" not in response.headers["content-security-policy"]  # default-src 'none': no script
    return response


def assert_safe_card(html: str) -> None:
    assert "<h1>Results of the study</h1>" in html and "<table>" in html
    assert "<script" not in html and "onerror=" not in html.replace("onerror=&quot;", "")
    assert "&lt;script&gt;" in html and 'href="javascript:' not in html


@pytest.mark.parametrize("kind", ["dataset", "model", "space"])
def test_repo_pages_show_files_branches_and_the_rendered_card(local_hub, published, kind: str) -> None:
    prefix = {"dataset": "/datasets/", "model": "/", "space": "/spaces/"}[kind]
    repo_id = published[kind]
    html = page(local_hub, f"{prefix}{repo_id}").text
    assert repo_id in html and "README.md" in html and "data/" in html
    assert "epoch-01" in html and "main" in html
    assert_safe_card(html)
    tree = page(local_hub, f"{prefix}{repo_id}/tree/epoch-01").text
    assert "epoch-01" in tree and "README.md" in tree
    slashed = f"{prefix}{repo_id}/tree/release%2Fv1.0"
    assert f"href='{slashed}'" in html and "README.md" in page(local_hub, slashed).text
    folder = page(local_hub, f"{prefix}{repo_id}/tree/main/data").text
    assert "&lt;i&gt;odd &amp; 100%.csv" in folder and "<i>odd" not in folder
    assert f"{prefix}{repo_id}/resolve/main/data/%3Ci%3Eodd%20%26%20100%25.csv" in folder


def test_file_links_on_a_page_download_the_file(local_hub, published) -> None:
    link = f"/datasets/{published['dataset']}/resolve/main/data/%3Ci%3Eodd%20%26%20100%25.csv"
    assert httpx.get(f"{local_hub.endpoint}{link}").content == b"a,b\n"


def test_the_index_lists_public_repos_with_links_to_their_pages(local_hub, published) -> None:
    html = page(local_hub, "/").text
    assert (
        f"href='/datasets/{published['dataset']}'" in html and f"href='/spaces/{published['space']}'" in html
    )
    assert published["private"] not in html


def test_missing_private_and_docs_pages_are_404(local_hub, published) -> None:
    for path in (f"/{published['private']}", f"/{DEFAULT_USER}/no-such-repo", "/_docs", "/_openapi.json"):
        assert httpx.get(f"{local_hub.endpoint}{path}").status_code == 404, path


def test_a_collection_page_links_its_items_to_their_pages(local_hub, published) -> None:
    api = HfApi(endpoint=local_hub.endpoint, token=local_hub.token)
    suffix = uuid.uuid4().hex[:8]
    collection = api.create_collection(f"<b>Release</b> {suffix}", description="<script>x()</script> & more")
    for kind in ("dataset", "model", "space"):
        api.add_collection_item(collection.slug, published[kind], kind, note="<i>noted</i>")
    api.add_collection_item(collection.slug, "2506.14681", "paper")
    html = page(local_hub, f"/collections/{collection.slug}").text
    assert f"&lt;b&gt;Release&lt;/b&gt; {suffix}" in html and "<b>Release" not in html
    assert "&lt;script&gt;x()&lt;/script&gt; &amp; more" in html and "&lt;i&gt;noted&lt;/i&gt;" in html
    for kind, prefix in (("dataset", "/datasets/"), ("model", "/"), ("space", "/spaces/")):
        link = prefix + published[kind]
        assert f"href='{link}'" in html and published[kind] in page(local_hub, link).text
    assert "2506.14681" in html  # a paper is named, not linked: its page is on the real Hub
    hidden = api.create_collection(f"hidden {suffix}", private=True)
    assert httpx.get(f"{local_hub.endpoint}/collections/{hidden.slug}").status_code == 404
    assert httpx.get(f"{local_hub.endpoint}/collections/{DEFAULT_USER}/nothing-{'0' * 24}").status_code == 404


@pytest.mark.browser
def test_a_repo_page_reads_well_in_chromium_and_runs_no_card_script(local_hub, published) -> None:
    from playwright.sync_api import sync_playwright  # lazy: a browser is needed by this test only

    dialogs: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        tab = browser.new_page()
        tab.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        tab.goto(f"{local_hub.endpoint}/datasets/{published['dataset']}", timeout=60_000)
        heading = tab.inner_text("article h1")
        tab.click("text=click me", timeout=10_000)
        tab.click("text=epoch-01 >> nth=0", timeout=10_000)
        tree_url = tab.url
        browser.close()
    assert heading == "Results of the study"
    assert dialogs == []
    assert tree_url.endswith(f"/datasets/{published['dataset']}/tree/epoch-01")


def test_the_index_is_paged(tmp_path) -> None:
    storage = Storage(tmp_path)
    for index in range(INDEX_PAGE_SIZE + 5):
        storage.create_repo("model", f"many/repo-{index:04d}", "many")
    with serve_in_background(tmp_path) as hub:
        first, second = (httpx.get(f"{hub.endpoint}/?page={n}").text for n in (1, 2))
        assert httpx.get(f"{hub.endpoint}/?page=0").status_code == 400
    assert "many/repo-0000" in first and f"many/repo-{INDEX_PAGE_SIZE - 1:04d}" in first
    assert f"many/repo-{INDEX_PAGE_SIZE:04d}" not in first and "href='/?page=2'" in first
    assert f"many/repo-{INDEX_PAGE_SIZE + 4:04d}" in second and "many/repo-0000" not in second
