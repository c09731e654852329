"""Submissions end to end on the local Hub, in Debian's Chromium (Playwright): a tiny model uploaded as a
model repo is submitted through the Space's Submit tab; invalid submissions are refused with a clear
message and write nothing; ``python -m evaluation queue`` is killed (SIGKILL) in the middle of the
evaluation, and the next run takes the abandoned request again, finishes it and publishes its scores,
after a request whose model vanished has failed without stopping the queue; after a reload the Space
shows the model beside the study's, marked as a submission, and the queue view shows every status."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from space_support import free_port
from submission_support import (
    BASE_NAME,
    api_of,
    broken_copy,
    publish_results,
    request_files,
    requests_of,
    unique,
    upload_model,
)
from test_space_browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS

from common.schema import read_scores
from common.submissions import FAILED, FINISHED, RUNNING, RequestsRepo, parse_timestamp, utc_now
from evaluation.suites import load_suite
from space.config import SpaceConfig
from space.data import ResultsStore
from space.submit import SubmissionForm, known_bases, submit
from space.ui import build_app, launch

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_MS = 60_000
HEARTBEAT_S, STALE_AFTER_S = 1.0, 3.0


def queue_command(requests: str, results: str, root: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "evaluation",
        "queue",
        "--requests",
        requests,
        "--results",
        results,
        "--root",
        str(root),
        "--suite",
        "demo",
        "--limit",
        "2",
        "--device",
        "cpu",
        "--heartbeat",
        str(HEARTBEAT_S),
        "--stale-after",
        str(STALE_AFTER_S),
    ]


def send(page, repo_id: str, expected: str) -> str:
    """Fill the form the way a person does, submit, and wait for the answer naming ``expected``."""
    page.fill("#s-repo input, #s-repo textarea", repo_id)
    page.fill("#s-contact input, #s-contact textarea", "alice@example.org")
    page.click("#s-submit")
    page.wait_for_function(
        "t => document.querySelector('#s-message').innerText.includes(t)", arg=expected, timeout=TIMEOUT_MS
    )
    return page.inner_text("#s-message")


def wait_for_rows(scores: Path, model_id: str, process: subprocess.Popen, timeout_s: float = 300) -> int:
    """Until the queue's evaluation has written a first score of ``model_id`` (bounded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        if scores.exists():
            rows = read_scores(scores)
            count = int((rows["model_id"] == model_id).sum())
            if count:
                return count
        time.sleep(0.2)
    raise AssertionError(f"no score of {model_id} within {timeout_s:.0f} s")


def test_submit_in_chromium_queue_survives_a_kill_and_the_space_shows_it(
    local_hub, tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("HF_TOKEN", local_hub.token)  # the Space's and the queue's write token
    base = upload_model(local_hub, tiny_llama, "tiny-llama-base", namespace="massive-sft")
    model = upload_model(local_hub, tiny_llama, "tiny-sft")
    garbage = upload_model(local_hub, broken_copy(tiny_llama, tmp_path / "garbage", "garbage"), "garbage")
    results = publish_results(local_hub, base, tmp_path / "results")
    requests_repo = RequestsRepo(f"massive-sft/{unique('requests')}", local_hub.endpoint)
    # An earlier request whose model is deleted before the queue runs: it fails, the queue goes on.
    vanished = upload_model(local_hub, tiny_llama, "vanished", namespace="bob")
    known = known_bases(
        ResultsStore(SpaceConfig(repo=results, endpoint=local_hub.endpoint)).results.leaderboard
    )
    doomed = submit(
        SubmissionForm(vanished, base_model=BASE_NAME, contact="bob@example.org"),
        requests_repo,
        local_hub.endpoint,
        known,
        5,
    )
    api_of(local_hub).delete_repo(vanished)

    config = SpaceConfig(
        repo=results, endpoint=local_hub.endpoint, requests_repo=requests_repo.repo_id, port=free_port()
    )
    store = ResultsStore(config)
    demo = build_app(store)
    launch(demo, config, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{config.port}"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            page.wait_for_selector("#leaderboard [data-ready]", state="attached")
            page.get_by_role("tab", name="Submit").click()
            page.fill("#s-base input", BASE_NAME)
            page.keyboard.press("Enter")
            message = send(page, model, "Queued")
            head, requests = requests_of(local_hub, requests_repo.repo_id)
            assert [r.repo_id for r in requests] == [vanished, model] and requests[1].base_model == base
            # Refusals: a clear message, and the requests dataset does not move.
            assert "was not found" in send(page, "alice/no-such-model", "Refused")
            assert "cannot be read" in send(page, garbage, "weights of")
            assert f"request {requests[1].request_id} is pending" in send(page, model, "already submitted")
            assert requests_of(local_hub, requests_repo.repo_id)[0] == head
            texts = request_files(local_hub, requests_repo.repo_id).values()
            assert not any(local_hub.token in t or str(tmp_path) in t or "127.0.0.1" in t for t in texts)

            # The queue, killed during the evaluation of the submitted model.
            root = tmp_path / "queue"
            command = queue_command(requests_repo.repo_id, results, root)
            env = {**os.environ, "HF_TOKEN": local_hub.token}
            first = subprocess.Popen(
                command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            try:
                wait_for_rows(root / "scores.parquet", requests[1].model_id, first)
            finally:
                first.send_signal(signal.SIGKILL)
                first.communicate(timeout=60)
            kept = read_scores(root / "scores.parquet")
            assert 0 < len(kept) < len(load_suite("demo").lm_entries), "killed after the evaluation ended"
            state = {r.request_id: r for r in requests_of(local_hub, requests_repo.repo_id)[1]}
            assert state[doomed.request_id].status == FAILED
            assert state[doomed.request_id].error == (
                f"model repo {vanished} was not found: it was deleted or made private after it was "
                "submitted; make it public and submit it again"
            )
            stuck = state[requests[1].request_id]
            assert (stuck.status, stuck.attempts) == (RUNNING, 1)

            # Once its heartbeat is stale, the next run takes it again and resumes its scores.
            stale_at = parse_timestamp(stuck.heartbeat_at) + timedelta(seconds=STALE_AFTER_S + 1)
            time.sleep(max(0.0, (stale_at - utc_now()).total_seconds()))
            second = subprocess.run(
                command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
            )
            assert second.returncode == 0, second.stdout + second.stderr
            assert "finished 1, failed 0, reclaimed from a stopped run 1" in second.stdout
            done = {r.request_id: r for r in requests_of(local_hub, requests_repo.repo_id)[1]}
            assert (done[stuck.request_id].status, done[stuck.request_id].attempts) == (FINISHED, 2)
            scores = read_scores(root / "scores.parquet")
            resumed = scores.merge(kept[["benchmark", "evaluated_at"]], on="benchmark")
            assert (resumed["evaluated_at_x"] == resumed["evaluated_at_y"]).all()  # not evaluated twice
            published = api_of(local_hub).list_repo_files(results, repo_type="dataset")
            assert f"submissions/{stuck.request_id}.parquet" in published

            # The Space after a reload: the model beside the study's, marked; the queue view.
            page.get_by_role("tab", name="Leaderboard").click()
            page.click("#refresh")  # the study's row and the submission: 2 models
            page.wait_for_function(
                "() => /of 2 models/.test(document.querySelector('#view-message').innerText)"
            )
            page.reload()
            page.wait_for_selector("#leaderboard [data-ready]", state="attached")
            page.locator("#search").press_sequentially(model.split("/")[1], delay=20)
            row = page.locator("#leaderboard-table tbody tr", has_text=f"{model} (submission)")
            row.wait_for()
            assert page.locator("#leaderboard-table tbody tr").count() == 1
            assert BASE_NAME in row.inner_text()
            assert "2 models (1 fine-tuned)" in page.inner_text("#results-source")
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "submission-in-leaderboard.png"))
            page.get_by_role("tab", name="Submit").click()
            page.click("#s-refresh")
            page.wait_for_function("() => document.querySelector('#s-queue').innerText.includes('finished')")
            queue = page.inner_text("#s-queue")
            assert model in queue and vanished in queue and "failed" in queue and "pending" not in queue
            assert "alice@example.org" not in queue  # contacts are for the maintainers only
            page.screenshot(path=str(SCREENSHOTS / "submit.png"), full_page=True)
            browser.close()
    finally:
        demo.close()
    assert message.startswith("Queued:") and requests[1].request_id in message
