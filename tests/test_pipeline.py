"""The README's main job, end to end: `python -m pipeline demo` (reduced) and `python -m pipeline study`
stage complete releases on the local Hub and serve them with the Space. Everything is checked from the
outside, the way a user would: Hub clients in a fresh process pointed at the staging Hub, the Space in a
real browser, every link either prints or shows followed, and the demo's report read for what the study
shows in miniature (learning, transfer, regression)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import httpx
import pandas as pd
import pytest

READY_LINE = "Press Ctrl-C"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEMO_ONLY = "base_model_name=tiny-llama,dataset=demo_facts"
DEMO_LIMIT = 8  # documents per benchmark: the demo's evaluation in seconds
# Hosts of links that leave this machine (the paper, the authors' code and weights, the Space's own
# Gradio and Plotly credits): offline they are checked for their form, never fetched.
EXTERNAL_HOSTS = {"arxiv.org", "aclanthology.org", "huggingface.co", "github.com", "gradio.app", "plotly.com"}
URL = re.compile(r"https?://[^\s'\"`<>()\[\]]+")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServedPipeline:
    """A ``python -m pipeline`` process that has staged its release and serves it."""

    process: subprocess.Popen
    hub_url: str
    space_url: str
    output: str  # everything it printed up to the line that says it serves
    root: Path | None = None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=60)


def start_pipeline(args: list[str], timeout_s: float, **extra_env: str) -> ServedPipeline:
    """Run ``python -m pipeline ARGS`` until it serves."""
    hub_port, space_port = _free_port(), _free_port()
    env = {**os.environ, "HF_TOKEN": "", "PYTHONUNBUFFERED": "1", **extra_env}
    env.pop("HF_ENDPOINT", None)  # no token and no endpoint: the release is staged locally
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            *args,
            "--hub-port",
            str(hub_port),
            "--space-port",
            str(space_port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    served = ServedPipeline(process, f"http://127.0.0.1:{hub_port}", f"http://127.0.0.1:{space_port}", "")
    output: list[str] = []
    deadline = time.monotonic() + timeout_s
    try:
        for line in process.stdout:
            output.append(line)
            if READY_LINE in line:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"pipeline not serving after {timeout_s:.0f} s:\n{''.join(output[-60:])}")
        else:
            pytest.fail(f"pipeline exited with {process.wait()} before serving:\n{''.join(output[-80:])}")
    except BaseException:
        served.stop()
        raise
    served.output = "".join(output)
    # keep reading what it prints while it serves, so a full pipe never blocks the servers
    threading.Thread(target=process.stdout.read, daemon=True).start()
    return served


@contextmanager
def serving_pipeline(args: list[str], timeout_s: float, **extra_env: str) -> Iterator[ServedPipeline]:
    served = start_pipeline(args, timeout_s, **extra_env)
    try:
        yield served
    finally:
        served.stop()


def served_by(url: str, server: str) -> bool:
    return urlparse(url).netloc == urlparse(server).netloc


def urls_in(text: str) -> set[str]:
    """The http(s) URLs in printed text, without trailing punctuation."""
    return {url.rstrip(".,;:") for url in URL.findall(text)}


class _Page(HTMLParser):
    """The title, visible text and links of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.title, self.text, self.links = "", [], []
        self._in: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in.append(tag)
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.links.append(href)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._in:
            del self._in[len(self._in) - 1 - self._in[::-1].index(tag) :]

    def handle_data(self, data: str) -> None:
        if "title" in self._in:
            self.title += data
        elif not {"script", "style"} & set(self._in):
            self.text.append(data)


def parse_page(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def page_links(url: str, html: str) -> set[str]:
    """The http(s) links of a page, absolute, without fragments."""
    links = {urldefrag(urljoin(url, href)).url for href in parse_page(html).links}
    return {link for link in links if link.startswith(("http://", "https://"))}


def space_links(space_url: str) -> set[str]:
    """Every href the Space renders, read in Chromium after opening each of its tabs."""
    from playwright.sync_api import sync_playwright

    links: set[str] = set()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(space_url)
        page.wait_for_function(
            "(document.querySelector('#view-message') || {}).innerText?.includes('models')"
        )
        tabs = page.get_by_role("tab").all_inner_texts()
        assert {"Leaderboard", "Findings", "Compare", "About"} <= set(tabs), tabs
        for name in tabs:
            page.get_by_role("tab", name=name).click()
            page.wait_for_timeout(2_000)  # the tab's content arrives from the server
            if name == "About":
                page.wait_for_selector("a[href^='https://arxiv.org/']", state="attached")
            hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
            assert not [h for h in hrefs if h.startswith("javascript:")], hrefs
            links |= {urldefrag(h).url for h in hrefs if h.startswith(("http://", "https://"))}
        browser.close()
    return links


def assert_useful(url: str, response: httpx.Response, hub_url: str) -> None:
    """A page says what it shows: a staging Hub page has a title and text and names its repo (or the
    collection's owner); a file is not empty (checked by the caller)."""
    if not response.headers.get("content-type", "").startswith("text/html"):
        return
    if not served_by(url, hub_url):
        # the Space's app shell; the browser builds its content (space_links waits for the leaderboard)
        assert "gradio" in response.text.lower(), url
        return
    page = parse_page(response.text)
    text = " ".join(" ".join(page.text).split())
    kind, *rest = urlparse(url).path.strip("/").split("/")
    if kind == "collections":
        named = rest[0]  # its owner; the page shows the title, not the slug
    elif kind in ("datasets", "spaces"):
        named = "/".join(rest[:2])
    else:
        named = "/".join([kind, *rest][:2])  # a model repo, or "" for the index
    assert page.title.strip() and len(text) > 100 and named in text, (url, named, text[:500])


def assert_links_open(served: ServedPipeline, urls: set[str]) -> int:
    """GET each of ``urls`` served here, and every link on the staging Hub pages among them (one level
    further): 200, not empty, a useful page (assert_useful). The others must be https URLs of
    EXTERNAL_HOSTS; they are not fetched, since this machine has no network. Returns how many were."""
    local = {urlparse(served.hub_url).netloc, urlparse(served.space_url).netloc}
    external = sorted(u for u in urls if urlparse(u).netloc not in local)
    fetched: dict[str, httpx.Response] = {}
    with httpx.Client(timeout=60) as client:
        for url in sorted(urls - set(external)):
            fetched[url] = client.get(url)
        # one level further: the links on the staging Hub's pages (files, branches, collection items)
        further = {
            link
            for url, response in list(fetched.items())
            if served_by(url, served.hub_url)
            and response.headers.get("content-type", "").startswith("text/html")
            for link in page_links(url, response.text)
        }
        external += sorted(u for u in further if urlparse(u).netloc not in local)
        for url in sorted(further - set(fetched) - set(external)):
            fetched[url] = client.get(url)
    broken = [f"{r.status_code} {u}" for u, r in fetched.items() if r.status_code != 200 or not r.content]
    assert broken == [], broken
    for url, response in fetched.items():
        assert_useful(url, response, served.hub_url)
    print(f"not fetched (off this machine, and there is no network here): {sorted(set(external))}")
    for url in external:
        parts = urlparse(url)
        assert parts.scheme == "https" and parts.hostname in EXTERNAL_HOSTS, url
    return len(fetched)


def run_as_user(hub_url: str, code: str) -> dict:
    """Run ``code`` in a fresh interpreter pointed at the staging Hub; it prints one JSON object."""
    env = {**os.environ, "HF_ENDPOINT": hub_url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": ""}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _stops_answering(url: str, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2)
        except httpx.TransportError:
            return True
        time.sleep(0.5)
    return False


def space_status(space_url: str, expected: str) -> str:
    """The leaderboard's status line once it says ``expected``, read in Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(60_000)
        page.goto(space_url)
        page.wait_for_function(
            "t => (document.querySelector('#view-message') || {}).innerText?.includes(t)", arg=expected
        )
        text = page.inner_text("#view-message")
        browser.close()
    return text


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedPipeline]:
    """The reduced demo (tiny-llama x demo_facts, full and LoRA, DEMO_LIMIT documents per benchmark),
    run once for this module and serving until its last test stops it."""
    root = tmp_path_factory.mktemp("pipeline") / "demo"
    # Offline users set HF_HUB_OFFLINE=1: the pipeline still stages to and serves its local Hub.
    served = start_pipeline(demo_args(root), timeout_s=1500, HF_HUB_OFFLINE="1")
    served.root = root
    try:
        yield served
    finally:
        served.stop()


def demo_args(root: Path) -> list[str]:
    return ["demo", "--root", str(root), "--only", DEMO_ONLY, "--limit", str(DEMO_LIMIT)]


@pytest.mark.slow
def test_demo_pipeline_stages_a_complete_release(demo: ServedPipeline) -> None:
    hub_url, space_url, output = demo.hub_url, demo.space_url, demo.output
    # one set of instructions, with the ports actually served
    assert "127.0.0.1:8900" not in output and output.count("export HF_ENDPOINT=") == 1
    assert f"export HF_ENDPOINT={hub_url} " in output and f"leaderboard Space : {space_url}" in output
    assert "Overwriting default num_fewshot" not in output
    for stage in (
        "prepare data",
        "train",
        "evaluate",
        "perplexity",
        "layer statistics",
        "model map",
        "analysis report",
        "stage the release",
    ):
        assert f"=== {stage}: done" in output
    assert (demo.root / "report" / "report.html").exists()
    found = run_as_user(
        hub_url,
        """
        import json
        import datasets
        from huggingface_hub import HfApi
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer
        api = HfApi()
        repos = [m.id for m in api.list_models()]
        full = next(r for r in repos if r.endswith("-full-200-cosine"))
        lora = next(r for r in repos if r.endswith("-lora-200-cosine"))
        base = next(r for r in repos if r.endswith("/tiny-llama"))
        model = AutoModelForCausalLM.from_pretrained(full, revision="epoch-02")
        AutoTokenizer.from_pretrained(full)
        adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), lora,
                                            revision="epoch-04")
        board = datasets.load_dataset("massive-sft-demo/massive-sft-results", "leaderboard", split="train")
        print(json.dumps({"branches": sorted(b.name for b in api.list_repo_refs(full).branches),
                          "params": model.num_parameters(), "adapter": type(adapter).__name__,
                          "models": sorted(board["model_id"])}))
    """,
    )
    assert found["branches"] == ["epoch-02", "epoch-04", "main"]
    assert found["params"] > 0 and found["adapter"] == "PeftModelForCausalLM"
    # the base model and both kept epochs of both runs
    assert len(found["models"]) == 5 and "tiny-llama" in found["models"]
    page = httpx.get(space_url, timeout=30)
    assert page.status_code == 200 and "gradio" in page.text.lower()


# One answer of DEMO_LIMIT documents moves a benchmark's score by 100 / DEMO_LIMIT = 12.5 points. The
# trained task's mean gain (all four models of the run, both its benchmarks) must exceed that, i.e. be
# more than one changed answer per score could make. The demo is seeded and deterministic (the same
# numbers on every run); measured: 29.7 (full fine-tuning learns the facts, 50 -> 100 multiple choice
# and 0 -> 100 exact match at epoch 4; LoRA at its learning rate does not move them within 4 epochs).
TRAINED_TASK_MIN_MEAN_GAIN = 100 / DEMO_LIMIT


@pytest.mark.slow
def test_demo_report_shows_learning_transfer_and_regression(demo: ServedPipeline) -> None:
    """What the study shows, in miniature, read from the report's published gains table."""
    gains = pd.read_parquet(demo.root / "report" / "tables" / "gains.parquet")
    shown = gains[["model_id", "benchmark", "base_value", "value", "gain"]].to_string()
    assert set(gains["dataset"]) == {"demo_facts"} and gains["model_id"].nunique() == 4, shown
    trained = gains["benchmark"].isin(["demo_facts", "demo_facts_gen"])
    assert gains.loc[trained, "gain"].mean() > TRAINED_TASK_MIN_MEAN_GAIN, shown
    # transfer: training on facts raises another task's score (demo_strings multiple choice, 25 -> 62.5)
    assert (gains.loc[~trained, "gain"] > 0).any(), shown
    # regression: it lowers one (LoRA on demo_arithmetic multiple choice, 50 -> 12.5 at epoch 2)
    assert (gains["gain"] < 0).any(), shown


@pytest.mark.slow
@pytest.mark.browser
def test_every_link_the_demo_prints_or_shows_opens_a_page(demo: ServedPipeline) -> None:
    """Every URL the pipeline printed and every href the Space renders (all tabs), and every link on the
    staging Hub's pages those open (one level further), answers 200 with a useful page. Links off this
    machine cannot be fetched offline: they must be https URLs of an allow-listed host and are only
    checked for their form (EXTERNAL_HOSTS)."""
    printed = urls_in(demo.output)
    hub_pages = {
        f"{demo.hub_url}/datasets/massive-sft-demo/massive-sft-results",
        f"{demo.hub_url}/spaces/massive-sft-demo/massive-sft-leaderboard",
    }
    assert hub_pages <= printed and demo.space_url in printed, sorted(printed)
    assert any(u.startswith(f"{demo.hub_url}/collections/massive-sft-demo/") for u in printed), printed
    shown = space_links(demo.space_url)
    assert f"{demo.hub_url}/massive-sft-demo/tiny-llama-demo_facts-full-200-cosine/tree/epoch-04" in shown
    assert f"{demo.hub_url}/datasets/massive-sft-demo/massive-sft-results" in shown, sorted(shown)
    assert "https://arxiv.org/abs/2506.14681" in shown, sorted(shown)

    # the pages of 5 repos, their files and branches, the collection, the Space
    assert assert_links_open(demo, printed | shown) > 20


@pytest.mark.slow
def test_demo_servers_stop_and_a_rerun_does_nothing_again(demo: ServedPipeline) -> None:
    # Terminating the pipeline stops the servers it started.
    demo.stop()
    assert _stops_answering(demo.hub_url) and _stops_answering(demo.space_url)

    rerun = subprocess.run(
        [sys.executable, "-m", "pipeline", *demo_args(demo.root), "--no-serve"],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_TOKEN": ""},
        timeout=900,
    )
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert re.search(r"done\s+0\s+skipped\s+2\s+failed\s+0", rerun.stdout), rerun.stdout[-3000:]
    assert "evaluated 0 (model, benchmark, shots)" in rerun.stdout
    assert re.search(r"^commits 0,", rerun.stdout, re.M), rerun.stdout[-3000:]  # re-staging commits nothing
    # Without serving, the printed URLs are those of the server the printed command starts.
    served_port = re.search(r"python -m localhub --root \S+ --port (\d+)", rerun.stdout)
    assert served_port, rerun.stdout[-3000:]
    ports = {str(urlparse(u).port) for u in urls_in(rerun.stdout) if urlparse(u).hostname == "127.0.0.1"}
    assert ports == {served_port.group(1)}, rerun.stdout[-3000:]


@pytest.mark.slow
@pytest.mark.browser
def test_study_pipeline_serves_the_released_models(tmp_path: Path, released_table: Path) -> None:
    args = ["study", "--csv", str(released_table), "--root", str(tmp_path / "study")]
    with serving_pipeline(args, timeout_s=1500) as served:
        found = run_as_user(
            served.hub_url,
            """
            import json
            import datasets
            board = datasets.load_dataset("massive-sft/massive-sft-results", "leaderboard", split="train")
            print(json.dumps({"models": board.num_rows, "bases": sum(m == "base" for m in board["method"])}))
        """,
        )
        assert found == {"models": 1027, "bases": 11}
        assert "of 1,027 models" in space_status(served.space_url, "of 1,027 models")
        # The study's links open too: card-only repos at their epoch revision, the collection, the cards'
        # links to where the authors host the weights (external: checked for their form).
        shown = space_links(served.space_url)
        assert any("/tree/epoch-" in url for url in shown), sorted(shown)
        # the Hub index's first page alone links 200 repo pages
        assert assert_links_open(served, urls_in(served.output) | shown) > 200
