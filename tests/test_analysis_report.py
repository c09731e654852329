"""The report end to end: on the authors' real released table (through the importer), on a small
demo-like grid with every optional input, on bad input; and the predict CLI on a tiny model."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.report import Inputs, build_report
from tests.analysis_tables import row, synergy_scores, table


@pytest.fixture
def real_report(released_report):
    report, out, seconds, _ = released_report
    return report, out, seconds


@pytest.mark.slow
def test_real_table_gains_match_the_csv(real_report, released_table):
    report, out, _ = real_report
    gains = pd.read_parquet(out / "tables" / "gains.parquet")
    assert gains["model_id"].nunique() == 1016  # 1,027 models minus 11 base models
    assert gains["base_model_name"].nunique() == 11
    csv = pd.read_csv(released_table)
    base = csv[(csv["model_name"] == "Meta-Llama-3-8B") & (csv["data_name"] == "pretrain")].iloc[0]
    tuned = csv.iloc[1]  # Meta-Llama-3-8B, all, LoRA, epoch 7, cosine
    expected = tuned["mbpp_4shot"] - base["mbpp_4shot"]
    hit = gains[
        (gains["base_model_name"] == "Meta-Llama-3-8B")
        & (gains["dataset"] == "all")
        & (gains["method"] == "lora")
        & (gains["epoch"] == 7)
        & (gains["task"] == "mbpp-4shot")
    ]
    assert hit["gain"].iloc[0] == pytest.approx(expected)


@pytest.mark.slow
def test_real_table_findings_and_figures(real_report):
    report, out, seconds = real_report
    synergy = pd.read_parquet(out / "tables" / "synergy.parquet")
    assert synergy["base_model_name"].nunique() == 11 and synergy["dataset"].nunique() == 10
    agreement = pd.read_parquet(out / "tables" / "synergy_agreement.parquet")
    assert (agreement["kind"] == "universal-positive").sum() > 0
    correlations = pd.read_parquet(out / "tables" / "model_correlation.parquet")
    assert len(correlations[correlations["method"] == "full"]) == 55  # 11 choose 2
    comparisons = pd.read_parquet(out / "tables" / "factor_comparisons.parquet")
    assert set(comparisons["factor"]) == {"method", "data_size", "lr_schedule"}
    transfer = pd.read_parquet(out / "tables" / "cross_lingual.parquet").set_index(
        ["base_model_name", "target_task"]
    )
    assert 0.5 < transfer.loc[("all", "jmmlu-0shot"), "pearson"] < 0.9
    for name in (
        "gains_distribution",
        "synergy_agreement_full",
        "model_correlation_full",
        "pca",
        "factors",
        "epochs",
        "cross_lingual",
    ):
        assert (out / "figures" / f"{name}.png").stat().st_size > 10_000
    markdown = (out / "report.md").read_text()
    assert "Main condition: 1000 samples, epoch 10, cosine schedule; 11 base models, 10 datasets" in markdown
    assert markdown.index("## Data quality") < markdown.index("## Gains")
    assert "Identical score vectors: Mistral-7B-v0.1, Chinese-Mistral-7B-v0.1" in markdown
    assert "come from rows with data-quality flags" in markdown
    assert "Not available: perplexity" in markdown  # optional input absent, said so
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == sum(len(s.figures) for s in report.sections) >= 10
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page)  # self-contained
    assert seconds < 120  # well under a minute on an idle machine; the CI box is shared


def test_scores_without_base_rows_still_give_a_report(tmp_path, capsys):
    scores = table(
        [row("A/d1", "A", "d1", "full", "gsm8k", 45.0), row("A/d2", "A", "d2", "full", "gsm8k", 44.0)]
    )
    build_report(Inputs(scores=scores), tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    assert "no base-model rows" in markdown
    assert "## Training-task synergy" in markdown and "needs the gains" in markdown
    assert (tmp_path / "report.html").exists()
    assert "no base-model rows" in capsys.readouterr().err


def test_one_dataset_with_perplexity_names_why_there_is_no_prediction(tmp_path, capsys):
    scores = table(
        [row("A", "A", "pretrain", "base", "gsm8k", 40.0), row("A/d1", "A", "d1", "full", "gsm8k", 45.0)]
    )
    ppl = pd.DataFrame(
        [
            {
                "base_model_name": "A",
                "dataset": "d1",
                "scope": "response",
                "perplexity": 3.0,
                "n_tokens": 100,
                "n_samples": 10,
            }
        ]
    )
    report = build_report(Inputs(scores=scores, perplexity=ppl), tmp_path)
    notes = [n for section in report.sections for n in section.notes if n]
    assert not any("failed" in n for n in notes), notes
    assert "leave-one-dataset-out needs at least two datasets" in (tmp_path / "report.md").read_text()
    assert "No mtbench or alpaca_eval_v2 scores: these benchmarks need a judge model" in " ".join(notes)


def _demo_grid() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    gains = {
        (b, d, t): float(rng.normal(2, 3))
        for b in ("tiny-llama", "tiny-qwen2", "tiny-x")
        for d in ("demo_arithmetic", "demo_strings", "demo_facts", "demo_mix")
        for t in ("demo_arithmetic", "demo_strings", "demo_facts")
    }
    full = synergy_scores(gains, epoch=3, size=64)
    lora = synergy_scores({k: v - 1 for k, v in gains.items()}, method="lora", epoch=3, size=64)
    return table(pd.concat([full, lora[lora["method"] == "lora"]]).to_dict("records"))


def test_demo_grid_report_with_every_optional_input(tmp_path):
    from training.demo_data import demo_examples

    scores = _demo_grid()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    texts = {}
    for name in ("demo_arithmetic", "demo_strings", "demo_facts", "demo_mix"):
        source = name if name != "demo_mix" else "demo_facts"
        examples = demo_examples(source, "train", 20)
        frame = pd.DataFrame(
            {
                "id": [str(i) for i in range(20)],
                "dataset": name,
                "text": [f"###Question: {e['instruction']}\n###Answer: {e['response']}" for e in examples],
            }
        )
        frame.to_parquet(data_dir / f"{name}__20__abc.parquet")
        texts[name] = frame["text"].tolist()
    bench = {
        b: [e["instruction"] for e in demo_examples(b, "test", 10)]
        for b in ("demo_arithmetic", "demo_strings", "demo_facts")
    }
    ppl = pd.DataFrame(
        [
            {
                "base_model_name": b,
                "dataset": d,
                "scope": "response",
                "perplexity": 2.0 + i + j,
                "n_tokens": 100 * (i + 1),
                "n_samples": 20,
            }
            for j, b in enumerate(("tiny-llama", "tiny-qwen2", "tiny-x"))
            for i, d in enumerate(texts)
        ]
    )
    layer_rows = [
        {
            "model_id": m,
            "layer": layer,
            "depth": layer / 3,
            "module": "q_proj",
            "frobenius": 0.1,
            "relative": 0.01 * (1 + layer) * (1 + k),
            "n_params": 10,
        }
        for k, m in enumerate(scores.loc[scores["method"] == "full", "model_id"].unique())
        for layer in range(4)
    ]
    out = tmp_path / "report"
    report = build_report(
        Inputs(
            scores=scores,
            perplexity=ppl,
            layers=pd.DataFrame(layer_rows),
            training_texts=texts,
            benchmark_texts=bench,
        ),
        out,
    )
    notes = [n for s in report.sections for n in s.notes if n]
    assert not any("failed" in n for n in notes), notes
    values = pd.read_parquet(out / "tables" / "predictor_values.parquet")
    sim = values.set_index(["base_model_name", "method", "dataset", "task"])
    arithmetic = sim.loc[("tiny-llama", "full", "demo_arithmetic", "demo_arithmetic-0shot")]
    strings = sim.loc[("tiny-llama", "full", "demo_strings", "demo_arithmetic-0shot")]
    # "What is 3 plus 4?" shares its word trigrams with the arithmetic training data, not the strings data
    assert arithmetic["ngram_overlap"] > 0.5 > strings["ngram_overlap"]
    assert arithmetic["embedding_cosine"] > strings["embedding_cosine"]
    assert (out / "cache" / "embeddings").is_dir() and any((out / "cache" / "embeddings").iterdir())
    for name in ("predictor_summary", "prediction_errors", "layer_correlation", "variance_decomposition"):
        assert not pd.read_parquet(out / "tables" / f"{name}.parquet").empty, name
    assert (
        "Main condition adapted to the data: no 1000-sample runs, using 64" in (out / "report.md").read_text()
    )


@pytest.mark.slow
def test_report_cli_on_released_csv_names_missing_optional_inputs(released_table, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "analysis",
            "report",
            "--scores",
            str(released_table),
            "--out",
            str(tmp_path),
            "--layers",
            str(tmp_path / "nope.parquet"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "layers file" in result.stderr and "does not exist" in result.stderr
    assert (tmp_path / "report.html").exists() and (tmp_path / "tables" / "gains.parquet").exists()


def _predict(tiny_llama: Path, folder: Path, log_ppl: dict, gains: dict) -> subprocess.CompletedProcess:
    """Run `analysis predict` for tiny-llama on 8 demo samples, fitted on these results."""
    from training.demo_data import demo_examples

    synergy_scores(gains).to_parquet(folder / "scores.parquet")
    pd.DataFrame(
        [
            {
                "base_model_name": b,
                "dataset": d,
                "scope": "response",
                "perplexity": float(np.exp(v)),
                "n_tokens": 50,
                "n_samples": 10,
            }
            for (b, d), v in log_ppl.items()
        ]
    ).to_parquet(folder / "ppl.parquet")
    data = folder / "new.jsonl"
    data.write_text("\n".join(json.dumps(e) for e in demo_examples("demo_facts", "train", 8)))
    command = ["analysis", "predict", "--base-model", str(tiny_llama), "--base-model-name", "tiny-llama"]
    command += ["--data", str(data), "--scores", str(folder / "scores.parquet")]
    command += ["--perplexity", str(folder / "ppl.parquet"), "--json"]
    return subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True, timeout=600)


DATASETS = ("d0", "d1", "d2", "d3", "d4")
TASKS = ("demo_facts", "demo_strings")


@pytest.mark.slow
def test_predict_cli_on_tiny_model(tiny_llama, tmp_path):
    rng = np.random.default_rng(3)
    log_ppl = {(b, d): float(rng.uniform(1, 4)) for b in ("tiny-llama", "other") for d in DATASETS}
    gains = {(b, d, t): 1.0 - 2.0 * log_ppl[(b, d)] for (b, d) in log_ppl for t in TASKS}
    result = _predict(tiny_llama, tmp_path, log_ppl, gains)
    assert result.returncode == 0, result.stderr
    header, payload = result.stdout.strip().splitlines()[-2:]
    assert "tiny-llama (fitted)" in header
    assert "leave-one-dataset-out: the perplexity predictor beats its baseline" in result.stdout
    table_out = pd.DataFrame(json.loads(payload)).set_index("task")
    assert set(table_out.index) == {"demo_facts-0shot", "demo_strings-0shot"}
    perplexity = float(re.search(r"perplexity ([0-9.]+)", header).group(1))
    # the fitted relation is exact (gain = 1 - 2 log ppl, same offset for every model): the prediction follows it
    expected = max(1 - 2 * np.log(perplexity), -50.0)  # base score 50: a gain below -50 is impossible
    assert table_out.loc["demo_facts-0shot", "predicted_gain"] == pytest.approx(expected, abs=0.05)
    assert (table_out["low"] <= table_out["predicted_gain"]).all() and (
        table_out["high"] >= table_out["predicted_gain"]
    ).all()
    assert (table_out[["low", "predicted_gain", "high"]] >= -50).all().all()
    assert (table_out[["low", "predicted_gain", "high"]] <= 50).all().all()


@pytest.mark.slow
def test_predict_cli_says_plainly_when_the_predictor_is_worse(tiny_llama, tmp_path):
    rng = np.random.default_rng(4)
    log_ppl = {(b, d): float(rng.uniform(1, 4)) for b in ("tiny-llama", "other") for d in DATASETS}
    log_ppl[("tiny-llama", "d4")] = log_ppl[("other", "d4")] = 40.0  # one far-off dataset
    gains = {(b, d, t): float(rng.normal(0, 3)) for (b, d) in log_ppl for t in TASKS}  # unrelated to it
    result = _predict(tiny_llama, tmp_path, log_ppl, gains)
    assert result.returncode == 0, result.stderr
    assert (
        "WARNING: leave-one-dataset-out: the perplexity predictor is WORSE than its baseline" in result.stdout
    )
    assert "do not use its predictions" in result.stderr


# ---------------------------------------------------------------- damaged inputs: one line, exit 2, no output


def _good_scores(path: Path) -> Path:
    scores = table(
        [row("A", "A", "pretrain", "base", "gsm8k", 40.0), row("A/d1", "A", "d1", "full", "gsm8k", 45.0)]
    )
    scores.to_parquet(path, index=False)
    return path


def _missing_column(path: Path) -> list[str]:
    pd.read_parquet(_good_scores(path)).drop(columns=["benchmark"]).to_parquet(path, index=False)
    return ["--scores", str(path)]


def _corrupt_parquet(path: Path) -> list[str]:
    data = _good_scores(path).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return ["--scores", str(path)]


def _bad_csv(path: Path) -> list[str]:
    csv = path.with_suffix(".csv")
    csv.write_text("model,score\nA,1\n", encoding="utf-8")
    return ["--scores", str(csv)]


def _bad_quality(path: Path) -> list[str]:
    quality = path.with_name("quality.json")
    quality.write_text('{"n_rows": 3,', encoding="utf-8")
    return ["--scores", str(_good_scores(path)), "--quality", str(quality)]


def _empty_scores(path: Path) -> list[str]:
    pd.read_parquet(_good_scores(path)).iloc[:0].to_parquet(path, index=False)
    return ["--scores", str(path)]


def _corrupt_layers(path: Path) -> list[str]:
    layers = path.with_name("layers.parquet")
    layers.write_bytes(b"PAR1 not really")
    return ["--scores", str(_good_scores(path)), "--layers", str(layers)]


DAMAGED = {
    "missing column": (_missing_column, "missing columns ['benchmark']"),
    "corrupt parquet": (_corrupt_parquet, "not a readable parquet table"),
    "bad csv": (_bad_csv, "columns do not match the released table"),
    "bad quality.json": (_bad_quality, "is not valid JSON"),
    "empty scores": (_empty_scores, "has no score rows"),
    "corrupt layers": (_corrupt_layers, "layers file"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_damaged_inputs_give_one_line_and_no_partial_report(case, tmp_path, capsys):
    from analysis import cli_report
    from common.cli import run_command

    damage, message = DAMAGED[case]
    out = tmp_path / "report"
    argv = [*damage(tmp_path / "scores.parquet"), "--out", str(out)]
    assert run_command("python -m analysis report", cli_report, argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: ") and err.count("\n") == 1, err
    assert not out.exists()
    # An earlier report stays as it was; no temporary folder is left behind.
    out.mkdir()
    (out / "report.md").write_text("earlier report")
    assert run_command("python -m analysis report", cli_report, argv) == 2
    assert (out / "report.md").read_text() == "earlier report"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_the_report_folder_is_replaced_as_a_whole(tmp_path, capsys):
    from analysis import cli_report
    from common.cli import run_command

    out = tmp_path / "report"
    (out / "cache").mkdir(parents=True)
    (out / "cache" / "kept.txt").write_text("cache")
    (out / "stale.txt").write_text("from an earlier report")
    argv = ["--scores", str(_good_scores(tmp_path / "scores.parquet")), "--out", str(out)]
    assert run_command("python -m analysis report", cli_report, argv) == 0
    assert (out / "report.md").exists() and (out / "cache" / "kept.txt").read_text() == "cache"
    assert not (out / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
