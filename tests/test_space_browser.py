"""End to end in Debian's Chromium (Playwright, never `playwright install`): the Space serving the 1,027
real imported rows with the analysis tables of the real analysis stage. Screenshots go to
artifacts/screenshots/; every request the page makes is recorded and must stay on 127.0.0.1."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlparse

import pandas as pd
import pytest
from space_support import free_port, released_import, write_results_folder

from space.config import SpaceConfig
from space.data import ResultsStore
from space.table import Filters, build_view
from space.ui import build_app, launch

pytestmark = [pytest.mark.browser, pytest.mark.slow]

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
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def store(released_table: Path, tmp_path_factory: pytest.TempPathFactory) -> ResultsStore:
    from analysis.report import Inputs, build_report

    scores, quality = released_import(released_table)
    work = tmp_path_factory.mktemp("space-browser")
    report = build_report(Inputs(scores=scores, quality=quality), work / "report")
    folder = write_results_folder(scores, quality, work, tables=report.tables)
    return ResultsStore(SpaceConfig(local_path=folder, port=free_port()))


@pytest.fixture(scope="module")
def server(store: ResultsStore) -> Iterator[str]:
    demo = build_app(store)
    launch(demo, store.config, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{store.config.port}"
    finally:
        demo.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server: str):
    context = browser.new_context(viewport={"width": 1500, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    yield page
    context.close()
    outside = [
        u for u in requests if urlparse(u).hostname not in ("127.0.0.1",) and not u.startswith("data:")
    ]
    assert requests and not outside, f"the page made requests outside 127.0.0.1: {outside[:10]}"


def open_view(page, url: str) -> str:
    page.goto(url)
    page.wait_for_selector("#view-message strong")
    return message(page)


def message(page) -> str:
    return page.inner_text("#view-message")


def wait_message(page, pattern: str) -> str:
    page.wait_for_function(
        "p => new RegExp(p).test(document.querySelector('#view-message').innerText)", arg=pattern
    )
    return message(page)


def visible_rows(page) -> list[list[str]]:
    return page.evaluate("""() => [...document.querySelectorAll('#leaderboard-table .virtual-row')]
        .map(r => [...r.querySelectorAll('.body-cell')].map(c => c.innerText.trim()))
        .filter(r => r.length > 1)""")


def header(page) -> list[str]:
    return page.evaluate("""() => [...document.querySelectorAll('#leaderboard-table .header-cell')]
        .map(c => c.innerText.trim())""")


def column(page, name: str) -> list[str]:
    index = header(page).index(name)
    return [row[index] for row in visible_rows(page)]


def pick(page, elem_id: str, value: str) -> None:
    """Choose ``value`` in a Gradio dropdown the way a person does: type, then Enter."""
    box = page.locator(f"#{elem_id} input").first
    box.click()
    box.fill(value)
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")


def test_table_filter_search_and_screenshot(page, server: str) -> None:
    assert re.search(r"1,027\s+of 1,027 models", open_view(page, server))
    assert "showing the first 500" in message(page)
    assert header(page)[:4] == ["rank", "model", "base model", "language"]
    assert len(visible_rows(page)) >= 5
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "leaderboard.png"))
    pick(page, "f-method", "lora")
    wait_message(page, r"^230\s+of 1,027")
    assert set(column(page, "method")) == {"lora"}
    page.locator("#search textarea").press_sequentially("olmo lima", delay=20)
    text = wait_message(page, r"^(?!230\s)\d+\s+of 1,027")
    count = int(text.split()[0])
    assert 0 < count < 230
    assert all(b == "OLMo-7B-hf" for b in column(page, "base model"))
    assert all("lima" in d for d in column(page, "dataset"))
    query = dict(parse_qsl(urlparse(page.url).query))
    assert query == {"method": "lora", "q": "olmo lima"}
    page.screenshot(path=str(SCREENSHOTS / "leaderboard-filtered.png"))


def test_sorting(page, server: str) -> None:
    open_view(page, server + "/?base=Qwen2.5-7B")
    pick(page, "f-sort", "gsm8k-4shot")
    page.wait_for_function("() => location.search.includes('sort=gsm8k-4shot')")
    values = [float(v) for v in column(page, "gsm8k-4shot") if v]
    assert len(values) >= 5 and values == sorted(values, reverse=True)
    page.get_by_label("ascending").check()
    page.wait_for_function("() => location.search.includes('order=asc')")
    page.wait_for_timeout(300)
    values = [float(v) for v in column(page, "gsm8k-4shot") if v]
    assert values == sorted(values)


def test_url_restores_a_filtered_view(page, server: str, store: ResultsStore) -> None:
    url = server + "/?base=OLMo-7B-hf&method=full&epochs=2-4&q=math&sort=epoch&order=asc&family=math"
    text = open_view(page, url)
    expected = build_view(
        store.results,
        Filters(
            base_models=("OLMo-7B-hf",),
            methods=("full",),
            epoch_min=2,
            epoch_max=4,
            search="math",
            sort_by="epoch",
            descending=False,
            families=("math",),
        ),
        store.config,
    )
    assert text.startswith(f"{expected.count}") and expected.count > 0
    assert page.input_value("#search textarea") == "math"
    assert page.input_value("#f-epoch-min input[type=number]") == "2"
    assert header(page)[9:] == ["average", "gsm8k-0shot", "gsm8k-4shot", "math-0shot"]
    epochs = [int(e) for e in column(page, "epoch")]
    assert epochs == sorted(epochs) and set(epochs) <= {2, 3, 4}


def test_bad_link_shows_an_empty_table_with_a_message(page, server: str) -> None:
    text = open_view(page, server + "/?method=nonsense&epochs=x&q=(.*")
    assert "does not have" in text and "nonsense" in text
    assert visible_rows(page) == []
    assert page.locator(".toast-body.error").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "bad-link.png"))
    text = open_view(page, server + "/?q=" + "%5B(.*%2B")  # regex characters: a literal, unmatched search
    assert "No models match" in text


def test_csv_download_equals_the_view(page, server: str, store: ResultsStore) -> None:
    open_view(page, server + "/?method=lora&sort=mmlu-5shot")
    page.click("#export-csv")
    link = page.locator("#csv-file a").first
    link.wait_for()
    with page.expect_download() as download:
        link.click()
    frame = pd.read_csv(download.value.path())
    view = build_view(store.results, Filters(methods=("lora",), sort_by="mmlu-5shot"), store.config)
    expected = pd.read_csv(io.StringIO(view.frame.to_csv(index=False)))
    pd.testing.assert_frame_equal(frame, expected)
    assert len(frame) == 230 and column(page, "model")[0] == frame["model"].iloc[0]


def test_findings_tab_shows_plots(page, server: str) -> None:
    open_view(page, server)
    page.get_by_role("tab", name="Findings").click()
    page.wait_for_function("() => document.querySelectorAll('.finding-plot .js-plotly-plot').length >= 5")
    assert (
        page.locator(".finding-plot .js-plotly-plot .heatmaplayer, .finding-plot .js-plotly-plot .hm").count()
        + page.locator(".finding-plot .js-plotly-plot image").count()
        > 0
    )
    page.wait_for_timeout(500)
    page.screenshot(path=str(SCREENSHOTS / "findings.png"), full_page=True)
    page.get_by_role("tab", name="Compare").click()
    for model in ("OLMo-7B-hf", "Qwen2.5-7B"):
        pick(page, "c-models", model)
    page.wait_for_function("() => document.querySelector('#c-message').innerText.includes('2 models')")
    page.wait_for_selector("#c-plot .js-plotly-plot")
    page.screenshot(path=str(SCREENSHOTS / "compare.png"), full_page=True)
    page.get_by_role("tab", name="About").click()
    page.wait_for_function("() => document.querySelector('#a-quality').innerText.includes('Data-quality')")
    page.screenshot(path=str(SCREENSHOTS / "about.png"), full_page=True)


def test_reload_keeps_the_current_filters(page, server: str) -> None:
    open_view(page, server + "/?method=lora&q=qwen")
    before, banner = message(page), page.inner_text("#results-source")
    page.wait_for_timeout(1100)  # the banner shows the load time to the second
    page.click("#refresh")
    page.wait_for_function("b => document.querySelector('#results-source').innerText !== b", arg=banner)
    assert "1,027 models" in page.inner_text("#results-source")
    # the banner updates first; the table's message follows once Gradio's "processing" overlay is gone
    page.wait_for_function("b => document.querySelector('#view-message').innerText === b", arg=before)
    assert before.startswith("20")
    assert dict(parse_qsl(urlparse(page.url).query)) == {"method": "lora", "q": "qwen"}
