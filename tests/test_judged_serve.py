"""End to end with a real OpenAI-compatible server: ``transformers serve`` runs a small local judge model
on 127.0.0.1, ``python -m evaluation judge`` scores the tiny models of an output root on fixture-sized
MT-Bench and AlpacaEval sets loaded from the (local) Hub, and a re-run makes no judge call at all."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi

from common.schema import read_scores
from localhub import DEFAULT_USER
from tests.judge_support import build_rule_judge
from tests.release_fixtures import build_root, make_job
from tests.test_judged import write_fixtures

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parents[1]
JUDGE_RULES = {"Identifier": "M"}  # AlpacaEval's prompt ends "## Best Model Identifier"
JUDGE_DEFAULT = "Rating: [[7]]"  # every MT-Bench prompt


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served_judge(tmp_path: Path):
    """(base URL, model name, log file) of ``transformers serve`` running the rule judge."""
    folder = build_rule_judge(tmp_path / "rule-judge", JUDGE_RULES, JUDGE_DEFAULT)
    port = _free_port()
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [  # `transformers serve`, through this interpreter (PATH may lack the console script)
                sys.executable,
                "-m",
                "transformers.cli.transformers",
                "serve",
                str(folder),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--device",
                "cpu",
                "--log-level",
                "info",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert server.poll() is None, log.read_text()[-2000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        else:
            pytest.fail(f"transformers serve did not come up: {log.read_text()[-2000:]}")
        yield f"http://127.0.0.1:{port}/v1", str(folder), log
    finally:
        server.terminate()
        server.wait(timeout=30)


def _served_requests(log: Path) -> int:
    return log.read_text().count("POST /v1/chat/completions")


def _hub_datasets(local_hub, data: Path) -> tuple[str, str]:
    """The fixtures uploaded as Hub datasets, laid out as the community publishes them."""
    api = HfApi(token=local_hub.token)
    mtbench, alpaca = write_fixtures(data)
    names = []
    for name, folder in (("mt_bench_prompts", mtbench.parents[1]), ("alpaca_eval", alpaca)):
        repo = f"{DEFAULT_USER}/{name}-{uuid.uuid4().hex[:8]}"
        api.create_repo(repo, repo_type="dataset")
        api.upload_folder(folder_path=folder, repo_id=repo, repo_type="dataset")
        names.append(repo)
    return names[0], names[1]


def test_transformers_serve_judges_demo_models_and_a_rerun_is_cached(
    tmp_path: Path, tiny_llama: Path, local_hub, served_judge
) -> None:
    url, judge_model, log = served_judge
    mtbench_repo, alpaca_repo = _hub_datasets(local_hub, tmp_path / "data")
    root = build_root(tmp_path / "root", tiny_llama, [make_job("tiny-llama", "demo_facts", "full", epochs=1)])
    (root / "scores.parquet").unlink()
    command = [
        sys.executable,
        "-m",
        "evaluation",
        "judge",
        "--root",
        str(root),
        "--judge-url",
        url,
        "--judge-model",
        judge_model,
        "--judge-key-env",
        "UNSET_JUDGE_KEY_FOR_TEST",
        "--mtbench-data",
        mtbench_repo,
        "--alpacaeval-data",
        alpaca_repo,
        "--max-new-tokens",
        "4",
        "--device",
        "cpu",
        "--judge-rpm",
        "1200",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    first = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "about 14 calls for 2 model(s)" in first.stdout  # (4 turns + 3 instructions) x 2 models
    assert _served_requests(log) == 14

    scores = read_scores(root / "scores.parquet")
    models = set(scores["model_id"])
    assert len(models) == 2 and "tiny-llama" in models and any(m.endswith("/epoch-01") for m in models)
    assert set(scores["judge"]) == {"rule-judge"}  # the served folder's name, not its local path
    mt = scores[scores["benchmark"] == "mtbench"]
    assert set(mt["metric"]) == {"total", "writing", "math"} and set(mt["value"]) == {7.0}
    alpaca = scores[scores["benchmark"] == "alpaca_eval_v2"].set_index(["model_id", "metric"])["value"]
    assert ((alpaca >= 0) & (alpaca <= 100)).all() and {m for _, m in alpaca.index} == {
        "win_rate",
        "lc_win_rate",
    }

    second = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "about 0 calls" in second.stdout and "0 answers generated, 0 judge requests" in second.stdout
    assert _served_requests(log) == 14  # the server saw nothing new
