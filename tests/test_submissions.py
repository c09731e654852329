"""Submissions against the local Hub: the Submit tab's checks (models uploaded as real repos, read with
huggingface_hub), the request files they write (or, refused, do not write), the rate limit, the queue's
claiming of pending and stale requests, and the Space showing published submission scores."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from space_support import free_port
from submission_support import (
    BASE_NAME,
    api_of,
    broken_copy,
    lora_adapter,
    publish_results,
    request_files,
    requests_of,
    unique,
    upload_model,
)

from common.schema import conform
from common.submissions import (
    FAILED,
    PENDING,
    RUNNING,
    Conflict,
    Request,
    RequestsRepo,
    scrub,
    timestamp,
    utc_now,
)
from evaluation.queue import QueueSettings, QueueSummary, claim_next, failure_reason
from space.data import read_results_folder
from space.submit import SubmissionForm, SubmissionRefused, known_bases, submit


@pytest.fixture(scope="module")
def models(local_hub, tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Repo ids of the tiny base model, a full-weights model, a LoRA adapter and damaged models."""
    work = tmp_path_factory.mktemp("submission-models")
    repos = {
        "base": upload_model(local_hub, tiny_llama, "tiny-llama-base", namespace="massive-sft"),
        "full": upload_model(local_hub, tiny_llama, "tiny-sft"),
        "adapter": upload_model(local_hub, lora_adapter(tiny_llama, work / "adapter"), "tiny-lora"),
    }
    for damage in ("garbage", "pickle", "encoder", "custom-code"):
        repos[damage] = upload_model(local_hub, broken_copy(tiny_llama, work / damage, damage), damage)
    return repos


@pytest.fixture(scope="module")
def known(models: dict[str, str]) -> dict[str, str]:
    board = pd.DataFrame(
        {
            "base_model_name": [BASE_NAME],
            "base_model": [models["base"]],
            "method": ["base"],
            "dataset": ["pretrain"],
        }
    )
    return known_bases(board)


@pytest.fixture
def requests_repo(local_hub) -> RequestsRepo:
    return RequestsRepo(f"massive-sft/{unique('requests')}", local_hub.endpoint, token=local_hub.token)


def form(repo_id: str, **changes: str) -> SubmissionForm:
    return replace(
        SubmissionForm(repo_id=repo_id, base_model=BASE_NAME, contact="alice@example.org"), **changes
    )


def test_full_weights_and_adapters_are_queued_without_private_data(
    local_hub, models, known, requests_repo, tmp_path: Path
) -> None:
    full = submit(
        form(models["full"], dataset="lima", method="full"), requests_repo, local_hub.endpoint, known, 5
    )
    # The adapter's base comes from its adapter_config.json (the local folder it was trained from is not
    # a Hub repo), so it is named explicitly: by its Hub id, which resolves to the leaderboard's name.
    adapter = submit(
        form(models["adapter"], base_model=models["base"]), requests_repo, local_hub.endpoint, known, 5
    )
    head, requests = requests_of(local_hub, requests_repo.repo_id)
    assert [r.request_id for r in requests] == [full.request_id, adapter.request_id]
    assert [(r.status, r.weights, r.base_model_name) for r in requests] == [
        (PENDING, "full", BASE_NAME),
        (PENDING, "adapter", BASE_NAME),
    ]
    info = api_of(local_hub).model_info(models["full"])
    assert requests[0].commit == info.sha and requests[0].revision == "main"
    assert (requests[0].dataset, requests[0].method, requests[0].submitter) == ("lima", "full", "alice")
    assert requests[1].base_model == models["base"] and requests[1].score_method == "lora"
    assert api_of(local_hub).repo_info(requests_repo.repo_id, repo_type="dataset").private
    for text in request_files(local_hub, requests_repo.repo_id).values():
        assert local_hub.token not in text and "127.0.0.1" not in text and str(tmp_path.parent) not in text
        assert json.loads(text)["contact"] == "alice@example.org"


REFUSALS = [
    ("missing repo", lambda m: form("alice/no-such-model"), "was not found"),
    ("missing revision", lambda m: form(m["full"], revision="v9"), "revision 'v9' does not exist"),
    ("unreadable weights", lambda m: form(m["garbage"]), "weights of"),
    ("pickled weights", lambda m: form(m["pickle"]), "safetensors"),
    ("not a causal LM", lambda m: form(m["encoder"]), "not a causal language model"),
    ("custom code", lambda m: form(m["custom-code"]), "custom code"),
    ("not a repo id", lambda m: form("just-a-name"), "not a model repo id"),
    ("markup as dataset", lambda m: form(m["full"], dataset="<img src=x>"), "SFT dataset: letters"),
    ("odd revision", lambda m: form(m["full"], revision="main<b>"), "not a branch, tag or commit name"),
    ("token as contact", lambda m: form(m["full"], contact="hf_" + "a1" * 17), "access token"),
    ("no base", lambda m: form(m["full"], base_model=""), "name the base model"),
    ("unknown base", lambda m: form(m["full"], base_model="nobody/unknown-base"), "not a public model repo"),
]


@pytest.mark.parametrize(("case", "make", "expected"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_invalid_submissions_are_refused_and_write_nothing(
    local_hub, models, known, requests_repo, case, make, expected
) -> None:
    submit(form(models["adapter"], base_model=models["base"]), requests_repo, local_hub.endpoint, known, 5)
    before = requests_of(local_hub, requests_repo.repo_id)
    with pytest.raises(SubmissionRefused, match=expected):
        submit(make(models), requests_repo, local_hub.endpoint, known, 5)
    assert requests_of(local_hub, requests_repo.repo_id) == before


def test_duplicates_are_refused_until_the_request_failed(local_hub, models, known, requests_repo) -> None:
    first = submit(form(models["full"]), requests_repo, local_hub.endpoint, known, 5)
    before = requests_of(local_hub, requests_repo.repo_id)
    with pytest.raises(SubmissionRefused, match=f"already submitted: request {first.request_id} is pending"):
        submit(form(models["full"], revision=first.commit), requests_repo, local_hub.endpoint, known, 5)
    assert requests_of(local_hub, requests_repo.repo_id) == before
    requests_repo.update(first.request_id, lambda r: r.moved(FAILED, utc_now(), error="x"), "fail")
    again = submit(form(models["full"]), requests_repo, local_hub.endpoint, known, 5)
    assert again.request_id != first.request_id and again.commit == first.commit


def test_rate_limit_per_submitter(local_hub, models, known, requests_repo) -> None:
    submit(form(models["full"]), requests_repo, local_hub.endpoint, known, 2)
    submit(form(models["adapter"], base_model=models["base"]), requests_repo, local_hub.endpoint, known, 2)
    before = requests_of(local_hub, requests_repo.repo_id)
    with pytest.raises(
        SubmissionRefused, match=r"alice has submitted 2 models in the last 24 hours \(the limit is 2\)"
    ):
        submit(form(models["encoder"]), requests_repo, local_hub.endpoint, known, 2)
    assert requests_of(local_hub, requests_repo.repo_id) == before
    # Another namespace has its own budget.
    submit(form(models["base"]), requests_repo, local_hub.endpoint, known, 2)
    assert len(requests_of(local_hub, requests_repo.repo_id)[1]) == 3


def _settings(local_hub, requests_repo: RequestsRepo, tmp_path: Path, **changes) -> QueueSettings:
    base = QueueSettings(
        requests_repo.repo_id, "unused/results", local_hub.endpoint, tmp_path, stale_after_s=60
    )
    return replace(base, **changes)


def test_claims_in_order_reclaims_stale_runs_and_gives_up_after_max_attempts(
    local_hub, models, known, requests_repo, tmp_path: Path
) -> None:
    first = submit(form(models["full"]), requests_repo, local_hub.endpoint, known, 5)
    second = submit(
        form(models["adapter"], base_model=models["base"]), requests_repo, local_hub.endpoint, known, 5
    )
    settings = _settings(local_hub, requests_repo, tmp_path, max_attempts=2)
    summary = QueueSummary()
    claimed = claim_next(requests_repo, "owner-a", settings, summary)
    assert (claimed.request_id, claimed.status, claimed.owner, claimed.attempts) == (
        first.request_id,
        RUNNING,
        "owner-a",
        1,
    )
    # Fresh heartbeat: another run takes the next request, and leaves the first alone.
    other = claim_next(requests_repo, "owner-b", settings, summary)
    assert other.request_id == second.request_id and summary.running_elsewhere == [first.request_id]
    # owner-a dies: its heartbeat ages past stale_after_s; the next run takes the request again.
    old = timestamp(utc_now() - timedelta(seconds=120))
    requests_repo.update(first.request_id, lambda r: replace(r, heartbeat_at=old), "age")
    taken = claim_next(requests_repo, "owner-c", settings, summary)
    assert (taken.request_id, taken.owner, taken.attempts) == (first.request_id, "owner-c", 2)
    assert summary.reclaimed == [first.request_id]
    # Stopped again: with max_attempts reached it is failed with the reason, not started a third time.
    requests_repo.update(first.request_id, lambda r: replace(r, heartbeat_at=old), "age")
    requests_repo.update(second.request_id, lambda r: r.moved(FAILED, utc_now(), error="done"), "end")
    assert claim_next(requests_repo, "owner-d", settings, summary) is None
    final = {r.request_id: r for r in requests_of(local_hub, requests_repo.repo_id)[1]}
    assert final[first.request_id].status == FAILED
    assert "stopped 2 times without finishing" in final[first.request_id].error


def test_a_write_on_a_stale_head_is_a_conflict(local_hub, models, known, requests_repo) -> None:
    request = submit(form(models["full"]), requests_repo, local_hub.endpoint, known, 5)
    head, _ = requests_repo.read()
    requests_repo.write(request.moved(RUNNING, utc_now(), owner="a"), head, "a claims")
    with pytest.raises(Conflict):
        requests_repo.write(request.moved(RUNNING, utc_now(), owner="b"), head, "b claims on the old head")
    assert requests_of(local_hub, requests_repo.repo_id)[1][0].owner == "a"


def test_failure_reasons_carry_no_path_address_or_token(tmp_path: Path) -> None:
    error = OSError(f"cannot open {tmp_path}/work/model.safetensors at http://127.0.0.1:8808 hf_{'x' * 30}")
    reason = failure_reason(error, tmp_path)
    assert str(tmp_path) not in reason and "127.0.0.1" not in reason and "hf_x" not in reason
    assert reason.startswith("OSError: cannot open")
    assert scrub("a\nb  /home/me/secret c", ("b",)) == "a *** <path> c"


def test_request_files_are_checked_when_read() -> None:
    good = Request(
        "20260101T000000000Z-0123abcd",
        "a/b",
        "main",
        "c" * 40,
        "full",
        "x/y",
        "y",
        "a",
        "me",
        "2026-01-01T00:00:00Z",
    )
    assert Request.from_json(good.to_json()) == good
    for bad in ("[]", "{", json.dumps({**json.loads(good.to_json()), "status": "done"})):
        with pytest.raises(ValueError):
            Request.from_json(bad)
    with pytest.raises(ValueError, match="attempts"):
        Request.from_json(json.dumps({**json.loads(good.to_json()), "attempts": "1"}))


def test_the_space_shows_published_submissions_beside_the_study(local_hub, models, tmp_path: Path) -> None:
    from space.config import SpaceConfig
    from space.data import download_results

    results = publish_results(local_hub, models["base"], tmp_path)
    folder = download_results(SpaceConfig(repo=results, endpoint=local_hub.endpoint))
    base = read_results_folder(folder, "hub").leaderboard
    request = Request(
        "20260101T000000000Z-0123abcd",
        models["full"],
        "main",
        "c" * 40,
        "full",
        models["base"],
        BASE_NAME,
        "alice",
        "me",
        "2026-01-01T00:00:00Z",
        dataset="lima",
    )
    scores = pd.read_parquet(tmp_path / "results" / "data" / "scores.parquet").assign(
        **{k: v for k, v in request.identity().items()}, value=30.0, model_path=f"{models['full']}@{'c' * 40}"
    )
    api_of(local_hub).upload_file(
        path_or_fileobj=conform(scores).to_parquet(index=False),
        path_in_repo=request.results_path,
        repo_id=results,
        repo_type="dataset",
    )
    loaded = read_results_folder(
        download_results(SpaceConfig(repo=results, endpoint=local_hub.endpoint)), "hub"
    )
    board = loaded.leaderboard.set_index("model_id")
    assert len(board) == len(base) + 1
    row = board.loc[request.model_id]
    assert (row["submission"], row["repo_id"], row["revision"], row["dataset"]) == (
        request.request_id,
        models["full"],
        "c" * 40,
        "lima",
    )
    names = dict(zip(loaded.leaderboard["model_id"], loaded.display["name"], strict=True))
    assert names[request.model_id] == f"{models['full']} (submission)"
    assert pd.isna(board.loc[BASE_NAME, "submission"])
    # Gains over the same base model's row: 30 - 10 on every benchmark.
    gains = pd.DataFrame(loaded.gain_values, index=loaded.leaderboard["model_id"], columns=loaded.score_names)
    assert (gains.loc[request.model_id] == 20.0).all()


def test_a_release_keeps_the_published_submissions() -> None:
    from release.executor import RemoteEntry, diff_tree
    from release.plan import RevisionPlan

    tree = {
        path: RemoteEntry("0" * 40, None, 1)
        for path in ("data/old.parquet", "submissions/20260101T000000000Z-0123abcd.parquet", ".gitattributes")
    }
    assert diff_tree(RevisionPlan("main", {}), tree) == ([], ["data/old.parquet"])


def test_submissions_are_closed_without_a_requests_dataset() -> None:
    from space.config import SpaceConfig
    from space.data import ResultsStore
    from space.submit import SubmitService

    service = SubmitService(ResultsStore(SpaceConfig()))
    assert service.submit(form("alice/model")).startswith("Submissions are closed on this Space")
    assert service.queue().empty


def test_queue_cli_reports_setup_mistakes_in_one_line(
    local_hub, requests_repo, capsys, tmp_path: Path
) -> None:
    from evaluation.__main__ import main

    common = ["queue", "--requests", requests_repo.repo_id, "--root", str(tmp_path)]
    assert main([*common, "--results", "nobody/missing-results", "--endpoint", local_hub.endpoint]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: results dataset nobody/missing-results not found") and "\n" not in error
    assert main([*common, "--results", "x/y", "--heartbeat", "10", "--stale-after", "5"]) == 2
    assert "--stale-after 5 must exceed --heartbeat 10" in capsys.readouterr().err
    closed = f"http://127.0.0.1:{free_port()}"
    assert main([*common, "--results", "x/y", "--endpoint", closed]) == 2
    assert f"error: could not reach the results dataset x/y on {closed}" in capsys.readouterr().err
    assert main(["queue", "--results", "x/y"]) == 2
    assert "missing --requests" in capsys.readouterr().err


def test_queue_evaluates_an_adapter_on_its_base_and_publishes_it(
    local_hub, models, known, requests_repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import hf_hub_download

    from evaluation.queue import run_queue
    from evaluation.runner import RunOptions

    monkeypatch.setenv("HF_TOKEN", local_hub.token)  # the queue's write token
    results = publish_results(local_hub, models["base"], tmp_path / "results")
    request = submit(
        form(models["adapter"], base_model=models["base"]), requests_repo, local_hub.endpoint, known, 5
    )
    suite = tmp_path / "one-task.yaml"  # one demo task keeps the test short
    suite.write_text(
        "name: one-task\nprepare: demo\nentries:\n"
        "  - {benchmark: demo_facts, task: demo_facts_mc, shots: 0, metric: acc, limit: null}\n"
    )
    settings = replace(
        _settings(local_hub, requests_repo, tmp_path / "queue"),
        results_repo=results,
        suite=str(suite),
        run=RunOptions(limit=2, device="cpu"),
    )
    summary = run_queue(settings)
    assert (summary.finished, summary.failed) == ([request.request_id], [])
    done = requests_of(local_hub, requests_repo.repo_id)[1][0]
    assert (done.status, done.attempts, done.error) == ("finished", 1, None)
    path = hf_hub_download(results, request.results_path, repo_type="dataset", endpoint=local_hub.endpoint)
    scores = pd.read_parquet(path)
    assert scores[["model_id", "base_model_name", "method", "benchmark"]].values.tolist() == [
        [request.model_id, BASE_NAME, "lora", "demo_facts"]
    ]
    assert scores["model_path"].tolist() == [f"{models['adapter']}@{request.commit}"]  # not a local folder
    assert not (tmp_path / "queue" / "submissions" / request.request_id).exists()  # weights removed
