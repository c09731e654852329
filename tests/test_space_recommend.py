"""The Space's "What should I train on?" tab in Debian's Chromium, on the released table published as the
results dataset (leaderboard + the analysis stage's synergy table): the ranking a person sees is the one
``python -m analysis recommend`` computes, a new model is described by its scores, bad input is a
message. The browser fixtures (Chromium, requests kept on 127.0.0.1) are test_space_browser's."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from space_support import free_port, released_import, write_results_folder
from test_space_browser import SCREENSHOTS, browser, page, server  # noqa: F401 - fixtures used by name

from analysis.gains import compute_gains
from analysis.synergy import resolve_main_condition, synergy_table
from common.recommend import base_scores_of, model_profiles, recommend
from common.schema import to_wide
from space.config import SpaceConfig
from space.data import ResultsStore
from space.recommend import NEW_MODEL

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def study(released_table: Path) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """(scores, quality findings, main-condition synergy table) of the released table."""
    scores, quality = released_import(released_table)
    gains = compute_gains(scores)
    return scores, quality, synergy_table(gains, resolve_main_condition(gains))


@pytest.fixture(scope="module")
def store(study, tmp_path_factory: pytest.TempPathFactory) -> ResultsStore:
    scores, quality, synergy = study
    folder = write_results_folder(scores, quality, tmp_path_factory.mktemp("recommend"), {"synergy": synergy})
    return ResultsStore(SpaceConfig(local_path=folder, port=free_port()))  # served by the ``server`` fixture


def pick(view, element: str, typed: str, option: str) -> None:
    """Choose in a dropdown the way a person does: type part of it, click the option."""
    box = view.locator(f"#{element} input").first
    box.click()
    box.fill("")
    box.press_sequentially(typed, delay=20)
    view.get_by_role("option", name=re.compile("^" + re.escape(option) + "$")).first.click()


def shown_datasets(view) -> list[str]:
    """The dataset column of the ranking table, top to bottom (Gradio's grid: cell-<row>-<column>)."""
    view.wait_for_selector("#r-ranking [data-testid='cell-0-1']")
    return view.evaluate("""() => [...document.querySelectorAll('#r-ranking [role=gridcell][data-col="1"]')]
        .sort((a, b) => a.dataset.row - b.dataset.row).map(c => c.innerText.trim())""")


def recommend_and_wait(view, expected: str) -> str:
    """Click Recommend, wait for an answer that contains ``expected`` (the view shows a timer meanwhile)."""
    view.click("#r-go")
    view.wait_for_function(
        "e => { const t = document.querySelector('#r-summary').innerText; return t.includes(e) && !/processing/.test(t) }",
        arg=expected,
    )
    return view.inner_text("#r-summary")


def test_the_tab_ranks_the_datasets_as_the_cli_does(page, server: str, study) -> None:  # noqa: F811 - fixtures
    scores, _, synergy = study
    page.goto(server)
    page.get_by_role("tab", name="What should I train on?").click()
    page.wait_for_function("() => document.querySelector('#r-target input').value.length > 0")
    pick(page, "r-model", "llama-3-8", "Meta-Llama-3-8B")
    pick(page, "r-target", "family · ma", "family · math")
    summary = recommend_and_wait(page, "Leave-one-model-out")
    assert "Meta-Llama-3-8B, full fine-tuning, target family 'math'" in summary
    assert "Leave-one-model-out (11 base models" in summary and "beats the mean-gain baseline" in summary
    expected = recommend(
        synergy, model_profiles(base_scores_of(to_wide(scores))), "Meta-Llama-3-8B", "family:math"
    )
    assert shown_datasets(page) == expected.ranking["dataset"].tolist()
    page.wait_for_selector("#r-plot .js-plotly-plot")
    evidence = page.inner_text("#r-evidence")
    assert all(name in evidence for name in expected.similar["base_model_name"])
    page.screenshot(path=str(SCREENSHOTS / "recommend.png"), full_page=True)

    # A new base model, described by its own scores; then a typo in them is a message, not a crash.
    pick(page, "r-model", "new", NEW_MODEL)
    page.fill("#r-scores textarea", "mmlu-5shot=55, gsm8k-4shot=40")
    summary = recommend_and_wait(page, "new base model")
    assert "new base model" in summary and "a base model without results" in summary
    assert len(shown_datasets(page)) == 10
    page.fill("#r-scores textarea", "mmlu-5shot=fifty")
    summary = recommend_and_wait(page, "Cannot recommend")
    assert "Cannot recommend" in summary and "cannot read 'mmlu-5shot=fifty'" in summary
    assert not page.locator("#r-ranking").is_visible()
