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
    page.wait_for_selector("#leaderboard [data-ready]", state="attached")
    return message(page)


def message(page) -> str:
    return page.inner_text("#view-message")


def wait_message(page, pattern: str) -> str:
    page.wait_for_function(
        "p => new RegExp(p).test(document.querySelector('#view-message').innerText)", arg=pattern
    )
    return message(page)


def visible_rows(page) -> list[list[str]]:
    return page.evaluate("""() => [...document.querySelectorAll('#leaderboard-table tbody tr')]
        .map(r => [...r.querySelectorAll('td')].map(c => c.innerText.trim()))""")


def header(page) -> list[str]:
    # Without the sort arrow of the sorted column.
    return page.evaluate("""() => [...document.querySelectorAll('#leaderboard-table th')]
        .map(c => c.innerText.replace(/[▲▼]/g, '').trim())""")


def column(page, name: str) -> list[str]:
    index = header(page).index(name)
    return [row[index] for row in visible_rows(page)]


def choose(page, field: str, value: str) -> None:
    """Tick ``value`` in a choice filter the way a person does: open it, click the box, close it."""
    page.click(f"#f-{field} summary")
    page.check(f"#f-{field} input[value='{value}']")
    page.click(f"#f-{field} summary")


def expected(store: ResultsStore, **filters) -> pd.DataFrame:
    return build_view(store.results, Filters(**filters)).frame


def test_table_filter_search_readable_names(page, server: str, store: ResultsStore) -> None:
    assert re.search(r"1,027\s+of 1,027 models", open_view(page, server))
    assert "average = mean of the 21 percentage benchmark column(s)" in message(page)
    assert header(page)[:6] == ["rank", "model", "base model", "params (B)", "license", "language"]
    rows = visible_rows(page)
    assert len(rows) == 25
    first = expected(store).iloc[0]
    assert rows[0][1] == first["model"] and " · epoch " in rows[0][1]
    link = page.locator("#leaderboard-table tbody tr a").first
    assert link.get_attribute("title") == first["model id"]
    assert link.get_attribute("href").endswith(f"/{first['repo_id']}/tree/{first['revision']}")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "leaderboard.png"))
    choose(page, "methods", "lora")
    wait_message(page, r"^230\s+of 1,027")
    assert set(column(page, "method")) == {"lora"}
    page.locator("#search").press_sequentially("olmo lima", delay=20)
    count = len(expected(store, methods=("lora",), search="olmo lima"))
    wait_message(page, rf"^{count}\s+of 1,027")
    assert all(b == "OLMo-7B-hf" for b in column(page, "base model"))
    assert all("lima" in d for d in column(page, "dataset"))
    page.wait_for_function("() => location.search.includes('q=')")
    assert dict(parse_qsl(urlparse(page.url).query)) == {"method": "lora", "q": "olmo lima"}
    page.screenshot(path=str(SCREENSHOTS / "leaderboard-filtered.png"))


def test_license_and_size_filters(page, server: str, store: ResultsStore) -> None:
    open_view(page, server)
    choose(page, "licenses", "llama3")
    count = len(expected(store, licenses=("llama3",)))
    wait_message(page, rf"^{count:,}\s+of 1,027")
    assert set(column(page, "license")) == {"llama3"}
    choose(page, "parameters", "8")
    wait_message(page, rf"^{count:,}\s+of")  # every llama3 base has 8.0B parameters
    assert set(column(page, "params (B)")) == {"8"}
    page.wait_for_function("() => location.search.includes('params=8')")
    assert dict(parse_qsl(urlparse(page.url).query)) == {"license": "llama3", "params": "8"}


def test_paging_reaches_the_last_row(page, server: str, store: ResultsStore) -> None:
    open_view(page, server)
    everything = expected(store)
    page.click("#lb-pager button[data-page=last]")
    page.wait_for_function(
        "() => document.querySelector('#lb-page-info').innerText.includes('page 42 of 42')"
    )
    assert "rows 1,026–1,027 of 1,027" in page.inner_text("#lb-page-info")
    assert column(page, "model") == list(everything["model"].iloc[-2:])
    page.click("#lb-pager button[data-page=prev]")
    page.wait_for_function(
        "() => document.querySelector('#lb-page-info').innerText.includes('page 41 of 42')"
    )
    assert column(page, "model") == list(everything["model"].iloc[1000:1025])
    page.fill("#lb-page", "3")
    page.locator("#lb-page").dispatch_event("change")
    page.wait_for_function("() => document.querySelector('#lb-page-info').innerText.includes('page 3 of 42')")
    assert column(page, "model") == list(everything["model"].iloc[50:75])


def test_sorting_in_the_browser_matches_the_reference(page, server: str, store: ResultsStore) -> None:
    open_view(page, server + "/?base=Qwen2.5-7B")
    page.select_option("#f-sort", "gsm8k-4shot")
    page.wait_for_function("() => location.search.includes('sort=gsm8k-4shot')")
    reference = expected(store, base_models=("Qwen2.5-7B",), sort_by="gsm8k-4shot")
    assert column(page, "model") == list(reference["model"].iloc[:25])
    page.select_option("#f-order", "asc")
    page.wait_for_function("() => location.search.includes('order=asc')")
    reference = expected(store, base_models=("Qwen2.5-7B",), sort_by="gsm8k-4shot", descending=False)
    assert column(page, "model") == list(reference["model"].iloc[:25])
    # A header click sorts by that column (descending first; the model name ascending first).
    page.click("#leaderboard-table th[data-sort='model']")
    page.wait_for_function("() => location.search.includes('sort=model')")
    reference = expected(store, base_models=("Qwen2.5-7B",), sort_by="model", descending=False)
    assert column(page, "model") == list(reference["model"].iloc[:25])
    page.check("#f-mode input[value=gain]")
    page.wait_for_function("() => location.search.includes('mode=gain')")
    gains = expected(store, base_models=("Qwen2.5-7B",), sort_by="model", descending=False, mode="gain")
    shown = [float(v) if v else None for v in column(page, "gsm8k-4shot")]
    for value, reference_value in zip(shown, gains["gsm8k-4shot"].iloc[:25], strict=True):
        assert (value is None and pd.isna(reference_value)) or abs(value - reference_value) < 0.006


def test_url_restores_a_filtered_view(page, server: str, store: ResultsStore) -> None:
    url = server + "/?base=OLMo-7B-hf&method=full&epochs=2-4&q=math&sort=epoch&order=asc&family=math"
    text = open_view(page, url)
    reference = build_view(
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
    )
    assert text.startswith(f"{reference.count}") and reference.count > 0
    assert page.input_value("#search") == "math"
    assert page.input_value("#f-epoch-min") == "2"
    assert header(page)[11:] == ["average", "gsm8k-0shot", "gsm8k-4shot", "math-0shot"]
    assert column(page, "model") == list(reference.frame["model"].iloc[:25])


def test_bad_link_shows_an_empty_table_with_a_message(page, server: str) -> None:
    text = open_view(page, server + "/?method=nonsense&epochs=x&q=(.*")
    assert "does not have" in text and "nonsense" in text
    assert visible_rows(page) == []
    page.screenshot(path=str(SCREENSHOTS / "bad-link.png"))
    text = open_view(page, server + "/?q=" + "%5B(.*%2B")  # regex characters: a literal, unmatched search
    assert "No models match" in text


def test_csv_download_equals_the_view(page, server: str, store: ResultsStore) -> None:
    open_view(page, server + "/?method=lora&sort=mmlu-5shot")
    with page.expect_download() as download:
        page.click("#export-csv")
    frame = pd.read_csv(download.value.path())
    view = expected(store, methods=("lora",), sort_by="mmlu-5shot")
    reference = pd.read_csv(io.StringIO(view.to_csv(index=False)))
    pd.testing.assert_frame_equal(frame, reference, check_dtype=False, atol=2e-3)
    assert len(frame) == 230 and column(page, "model")[0] == frame["model"].iloc[0]


def test_findings_open_on_a_benchmark_with_signal(page, server: str, store: ResultsStore) -> None:
    from space import findings

    open_view(page, server)
    page.get_by_role("tab", name="Findings").click()
    page.wait_for_function("() => document.querySelectorAll('.finding-plot .js-plotly-plot').length >= 4")
    default = findings.default_task(store.results)
    assert page.input_value("#fi-task input") == default and not default.startswith("humaneval")
    assert page.locator(".finding-plot .js-plotly-plot .heatmaplayer").count() > 0
    # The analysis stage here had no weights: the model map's section says so once, with the command.
    text = page.inner_text("body")
    assert text.count("analysis/model_map.parquet") == 1 and "python -m analysis map" in text
    page.wait_for_timeout(500)
    page.screenshot(path=str(SCREENSHOTS / "findings.png"), full_page=True)


def test_compare_starts_empty_then_compares(page, server: str) -> None:
    open_view(page, server)
    page.get_by_role("tab", name="Compare").click()
    page.wait_for_selector("#c-message")
    assert "Pick 2 to 4 models" in page.inner_text("#c-message")
    # No placeholder table ("1 2 3" headers) and no empty plot before two models are picked.
    assert page.locator("#c-table").count() == 0 or not page.locator("#c-table").is_visible()
    assert page.locator("#c-plot .js-plotly-plot").count() == 0
    box = page.locator("#c-models input").first
    for term, name in (("olmo-7b-hf", "OLMo-7B-hf · "), ("qwen2.5-7b", "Qwen2.5-7B · ")):
        box.click()
        box.press_sequentially(term, delay=50)  # the choices follow the typed text (server search)
        page.get_by_role("option", name=re.compile("^" + re.escape(name))).first.click()
        page.keyboard.press("Escape")
    page.wait_for_function("() => document.querySelector('#c-message').innerText.includes('2 models')")
    page.wait_for_selector("#c-plot .js-plotly-plot")
    assert page.locator("#c-table").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "compare.png"), full_page=True)
    page.get_by_role("tab", name="About").click()
    page.wait_for_function("() => document.querySelector('#a-quality').innerText.includes('Data-quality')")


def test_reload_keeps_the_current_filters(page, server: str) -> None:
    open_view(page, server + "/?method=lora&q=qwen")
    before, banner = message(page), page.inner_text("#results-source")
    page.wait_for_timeout(1100)  # the banner shows the load time to the second
    page.click("#refresh")
    page.wait_for_function("b => document.querySelector('#results-source').innerText !== b", arg=banner)
    assert "1,027 models" in page.inner_text("#results-source")
    page.wait_for_function("b => document.querySelector('#view-message').innerText === b", arg=before)
    assert before.startswith("20")
    assert dict(parse_qsl(urlparse(page.url).query)) == {"method": "lora", "q": "qwen"}
