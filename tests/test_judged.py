"""MT-Bench and AlpacaEval 2 through a judge: parsing, retries, caching, scores and the judge's identity
(a scripted judge server here; a real model behind ``transformers serve`` in test_judged_serve.py)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.cli import parse_options
from common.schema import read_scores
from evaluation import cli_judge, cli_run
from evaluation.judged import alpacaeval
from evaluation.judged.answers import GenerationSettings
from evaluation.judged.client import JudgeSettings, RateLimiter
from evaluation.judged.data import DEMO_ALPACAEVAL, DEMO_MTBENCH, load_alpacaeval, load_mtbench
from evaluation.judged.mtbench import CATEGORIES, INVALID, parse_rating
from evaluation.judged.run import JudgedOptions, run_judged
from evaluation.runner import EvalModel, base_identity
from pipeline import demo
from tests.judge_support import Reply, ScriptedJudge, serve_scripted_judge

SECRET = "sk-test-0123456789abcdef"
MTBENCH_ROWS = [
    {"prompt": ["Say hi.", "Say bye."], "prompt_id": 11, "category": "writing", "reference": []},
    {
        "prompt": ["What is 1 + 1?", "And 2 + 2?"],
        "prompt_id": 22,
        "category": "math",
        "reference": ["2", "4"],
    },
]
ALPACA_ROWS = [
    {"instruction": "Name a fruit.", "output": "An apple.", "generator": "ref", "dataset": "t"},
    {"instruction": "Name a colour.", "output": "Blue is a colour.", "generator": "ref", "dataset": "t"},
    {"instruction": "Name a planet.", "output": "Mars.", "generator": "ref", "dataset": "t"},
]


def write_fixtures(folder: Path) -> tuple[Path, Path]:
    """Hub-shaped sets: MT-Bench as HuggingFaceH4/mt_bench_prompts' parquet, AlpacaEval as the files of
    tatsu-lab/alpaca_eval (references JSON, GLM baselines CSV)."""
    mtbench = folder / "mtbench" / "data" / "train-00000-of-00001.parquet"
    mtbench.parent.mkdir(parents=True)
    pd.DataFrame(MTBENCH_ROWS).to_parquet(mtbench)
    alpaca = folder / "alpaca"
    alpaca.mkdir()
    (alpaca / "alpaca_eval_gpt4_baseline.json").write_text(json.dumps(ALPACA_ROWS))
    gamed = [
        {
            "model": m,
            "index": i,
            "preference": p,
            "std_delta_len": s * (1 + i / 4),
            "instruction_difficulty": 0.3 * i,
        }
        for m, p, s in (("verbose", 0.7, -1.0), ("concise", 0.35, 1.0))
        for i in range(len(ALPACA_ROWS))
    ]
    pd.DataFrame(gamed).assign(not_gamed_baseline=False).to_csv(alpaca / "df_gamed.csv", index=False)
    return mtbench, alpaca


def script(user: str) -> list[Reply]:
    if "And 2 + 2?" in user:
        return [Reply(status=429, body='{"error": "slow down"}'), Reply("Correct. Rating: [4]")]
    if "Say bye." in user:
        return [Reply("The answer is fine, I cannot say more.")]  # no rating
    if "Say hi." in user:
        return [Reply("Good. Rating: [[8]]")]
    if "What is 1 + 1?" in user:
        return [Reply("Rating: [[11]]")]  # out of the 1-10 scale
    if "Name a fruit." in user:
        return [Reply("M", logprobs={"M": math.log(0.75), "m": math.log(0.25), "The": -9.0})]
    if "Name a colour." in user:
        return [Reply("m")]
    return [Reply("Both are good.")]  # no verdict


@pytest.fixture
def model(tiny_llama: Path) -> EvalModel:
    return EvalModel(
        "tiny-llama",
        str(tiny_llama),
        base_identity({"base_model_name": "tiny-llama", "base_model": "local/tiny-llama"}),
    )


def options(url: str, mtbench: Path, alpaca: Path, name: str = "scripted-judge") -> JudgedOptions:
    judge = JudgeSettings(
        url=url,
        model="judge-model",
        key_env="JUDGE_TEST_KEY",
        name=name,
        backoff_s=0.01,
        requests_per_minute=6000,
    )
    return JudgedOptions(
        judge=judge,
        mtbench_data=str(mtbench),
        alpacaeval_data=str(alpaca),
        generation=GenerationSettings(max_new_tokens=4, batch_size=4, device="cpu"),
    )


def test_replayed_judgments_parse_retry_cache_and_score_exactly(
    tmp_path: Path, model: EvalModel, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("JUDGE_TEST_KEY", SECRET)
    mtbench, alpaca = write_fixtures(tmp_path / "data")
    root = tmp_path / "root"
    with serve_scripted_judge(ScriptedJudge(script)) as judge:
        summary = run_judged(root, [model], options(judge.url, mtbench, alpaca))
        assert not summary.failed, summary.failed
        # 4 MT-Bench turns + 3 AlpacaEval instructions, one 429 retried
        assert (len(judge.requests), summary.judge_requests, summary.judge_retries) == (8, 8, 1)
        assert summary.estimate["calls"] == 7 and summary.generated == 7
        assert all(h.get("Authorization") == f"Bearer {SECRET}" for h in judge.headers)
        assert summary.unusable == {("tiny-llama", "mtbench"): 2, ("tiny-llama", "alpaca_eval_v2"): 1}

        scores = read_scores(root / "scores.parquet").set_index(["benchmark", "metric"])["value"]
        # valid ratings: writing turn 1 = 8, math turn 2 = 4 (no rating, 11 and nothing are left out)
        assert scores["mtbench", "total"] == 6.0
        assert (scores["mtbench", "writing"], scores["mtbench", "math"]) == (8.0, 4.0)
        assert {m for b, m in scores.index if b == "mtbench"} == {"total", "writing", "math"}
        fruit = 0.25 if alpacaeval.is_switched("Name a fruit.") else 0.75  # P(m) = 0.25 is the first shown
        colour = 1.0 if alpacaeval.is_switched("Name a colour.") else 0.0
        assert scores["alpaca_eval_v2", "win_rate"] == pytest.approx(100 * (fruit + colour) / 2)
        assert 0.0 <= scores["alpaca_eval_v2", "lc_win_rate"] <= 100.0

        table = read_scores(root / "scores.parquet")
        assert set(table["judge"]) == {"scripted-judge"} and set(table["source"]) == {"llm-judge"}
        assert set(table["shots"]) == {0}

        # a re-run: everything from the caches, not one judge request, not one answer generated
        again = run_judged(root, [model], options(judge.url, mtbench, alpaca))
        assert (len(judge.requests), again.judge_requests, again.generated) == (8, 0, 0)
        assert again.estimate["calls"] == 0
        assert read_scores(root / "scores.parquet")["value"].tolist() == table["value"].tolist()

        # another judge: the answers are reused, every judgment is redone and recorded under its name
        other = run_judged(root, [model], options(judge.url, mtbench, alpaca, name="other-judge"))
        assert (other.generated, other.judge_requests) == (0, 7)
        assert set(read_scores(root / "scores.parquet")["judge"]) == {"other-judge"}

    printed = capsys.readouterr()
    assert "about 7 calls" in printed.out
    for path in [root / "scores.parquet", *root.rglob("*.jsonl")]:
        assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in printed.out + printed.err


def test_a_refused_key_fails_clearly_without_echoing_it(
    tmp_path: Path, model: EvalModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUDGE_TEST_KEY", SECRET)
    mtbench, alpaca = write_fixtures(tmp_path / "data")
    echo = Reply(status=401, body=json.dumps({"error": f"Incorrect API key provided: {SECRET}"}))
    with serve_scripted_judge(ScriptedJudge(lambda _: [echo])) as judge:
        summary = run_judged(tmp_path / "root", [model], options(judge.url, mtbench, alpaca))
        assert len(judge.requests) == 7  # a 401 is not retried
    assert {b for _, b, _ in summary.failed} == {"mtbench", "alpaca_eval_v2"}
    message = summary.failed[0][2]
    assert "JUDGE_TEST_KEY" in message and "***" in message and SECRET not in message
    assert not (tmp_path / "root" / "scores.parquet").exists()


def test_persistent_server_errors_give_up_after_the_retries(tmp_path: Path, model: EvalModel) -> None:
    mtbench, alpaca = write_fixtures(tmp_path / "data")
    with serve_scripted_judge(ScriptedJudge(lambda _: [Reply(status=503, body="busy")])) as judge:
        settings = options(judge.url, mtbench, alpaca)
        judge_settings = JudgeSettings(**{**settings.judge.__dict__, "max_retries": 2})
        summary = run_judged(
            tmp_path / "root",
            [model],
            JudgedOptions(**{**settings.__dict__, "judge": judge_settings, "benchmarks": ("mtbench",)}),
        )
        assert len(judge.requests) == 4 * 3  # 4 turns, each tried 3 times
    assert "failed 3 times" in summary.failed[0][2] and "HTTP 503" in summary.failed[0][2]


@pytest.mark.parametrize(
    ("judgment", "rating"),
    [
        ("Rating: [[7]]", 7.0),
        ("[[9.5]] overall", 9.5),
        ("I'd say [3] at best", 3.0),
        ("Rating: [[10]]", 10.0),
        ("Rating: [[0]]", INVALID),
        ("Rating: [[11]]", INVALID),
        ("no rating", INVALID),
        ("Rating: 7", INVALID),
    ],
)
def test_mtbench_rating_parsing(judgment: str, rating: float) -> None:
    assert parse_rating(judgment) == rating


def test_requests_per_minute_spaces_request_starts() -> None:

    limiter = RateLimiter(requests_per_minute=1200)  # 50 ms apart
    started = time.monotonic()
    for _ in range(5):
        limiter.wait()
    assert time.monotonic() - started >= 4 * 0.05 - 0.005


def test_length_control_removes_a_win_rate_bought_with_length() -> None:
    """A model that wins exactly when it writes longer than the reference: its raw win rate is high,
    its length-controlled win rate falls back towards 50 % (what the GLM exists for)."""
    rng = np.random.default_rng(0)
    n = 120
    reference_length = rng.integers(50, 400, n)
    model_length = reference_length + rng.integers(-60, 400, n)
    longer = (model_length > reference_length).astype(float)
    judged = pd.DataFrame(
        {
            "index": np.arange(n),
            "preference": 0.1 + 0.8 * longer,
            "output": ["x" * int(k) for k in model_length],
            "reference": ["x" * int(k) for k in reference_length],
        }
    )
    difficulty = pd.Series(rng.normal(0, 0.3, n), index=np.arange(n))
    gamed = pd.DataFrame(
        {
            "index": np.tile(np.arange(n), 2),
            "preference": np.r_[np.full(n, 0.6), np.full(n, 0.4)],
            "std_delta_len": np.r_[np.full(n, -1.0), np.full(n, 1.0)],
            "instruction_difficulty": np.tile(difficulty.to_numpy(), 2),
            "not_gamed_baseline": False,
        }
    )
    raw, _ = alpacaeval.win_rate(judged["preference"])
    lc, lc_stderr = alpacaeval.length_controlled_win_rate(judged, gamed, difficulty)
    assert raw > 65
    assert abs(lc - 50) < abs(raw - 50) / 2 and lc_stderr > 0


def test_demo_sets_cover_every_category_and_the_pipeline_adds_them_only_with_a_judge() -> None:

    questions = load_mtbench(str(DEMO_MTBENCH))
    assert sorted(q.category for q in questions) == sorted(CATEGORIES)
    assert all(q.reference for q in questions if q.category in ("math", "reasoning", "coding"))
    data = load_alpacaeval(str(DEMO_ALPACAEVAL))
    assert data.gamed is not None and set(data.difficulty.index) == {i.index for i in data.instructions}

    plain = demo.demo_stages(parse_options(demo, []))
    judged = demo.demo_stages(
        parse_options(demo, ["--judge-url", "http://127.0.0.1:9/v1", "--judge-model", "j"])
    )
    assert [s.name for s in judged if s not in plain] == ["judged benchmarks (MT-Bench, AlpacaEval 2)"]
    assert [s.name for s in judged].index("judged benchmarks (MT-Bench, AlpacaEval 2)") == 3  # after evaluate
    stage = next(s for s in judged if s not in plain)
    assert stage.args[:2] == ("evaluation", "judge") and "--demo-data" in stage.args
    assert stage.args[stage.args.index("--judge-model") + 1] == "j"

    parsed = parse_options(cli_judge, stage.args[2:])  # the stage's command line is one the judge CLI takes
    assert parsed.judge.demo_data and parsed.grid == "demo" and parsed.judge.judge_model == "j"


def test_judge_cli_errors_are_one_line_with_exit_2(tmp_path: Path) -> None:

    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "evaluation",
            "judge",
            "--root",
            str(tmp_path),
            "--judge-url",
            "http://127.0.0.1:9/v1",
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error: no models under") and result.stderr.count("\n") == 1


def test_run_without_a_judge_names_the_skipped_judged_benchmarks(tmp_path: Path, capsys) -> None:

    paper = parse_options(cli_run, ["--root", str(tmp_path), "--suite", "paper"])
    assert cli_run._judged(paper, tmp_path) == 0
    assert (
        "skipped mtbench, alpaca_eval_v2: they need a judge model, pass --judge-url"
        in capsys.readouterr().out
    )
    assert (
        cli_run._judged(parse_options(cli_run, ["--root", str(tmp_path), "--suite", "demo"]), tmp_path) == 0
    )
    assert capsys.readouterr().out == ""


def test_judge_identity_and_host_carry_no_local_path_or_credentials(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "models" / "my-judge").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    url = "https://user:hunter2@api.example.com:8443/v1?key=abc"
    assert JudgeSettings(url=url, model="/srv/models/qwen-judge").identity == "qwen-judge"
    assert JudgeSettings(url=url, model="models/my-judge").identity == "my-judge"
    assert JudgeSettings(url=url, model="Qwen/Qwen2.5-7B-Instruct").identity == "Qwen/Qwen2.5-7B-Instruct"
    assert JudgeSettings(url=url, model="gpt-4o", name="gpt-4o-2024-08-06").identity == "gpt-4o-2024-08-06"
    assert JudgeSettings(url=url).host == "api.example.com:8443"
