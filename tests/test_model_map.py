"""The model map: projection on hand-made log-likelihoods, and the CLI on tiny real models (full and LoRA)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import cli_map
from analysis.common import MissingInputError
from analysis.model_map import MAP_COLUMNS, loglik_matrix, model_map, project, summarise, text_set
from analysis.report import Inputs, build_report
from common.cli import run_command


def _loglik(vectors: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"model_id": model, "text_id": f"t{i}", "loglik": value, "n_tokens": 5}
            for model, vector in vectors.items()
            for i, value in enumerate(vector)
        ]
    )


def _two_families(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two base models far apart, each with full fine-tunes (moved a lot) and LoRA ones (moved a little)."""
    rng = np.random.default_rng(seed)
    vectors, labels = {}, []
    for base in ("llama", "qwen"):
        centre = rng.normal(0, 20, size=12) - 50
        vectors[base] = centre
        labels.append({"model_id": base, "base_model": base, "method": "base", "dataset": "", "epoch": None})
        for k in range(3):
            for method, step in (("full", 2.0), ("lora", 0.3)):
                model_id = f"{base}-{method}-{k}"
                vectors[model_id] = centre + rng.normal(0, step, size=12)
                labels.append(
                    {
                        "model_id": model_id,
                        "base_model": base,
                        "method": method,
                        "dataset": f"d{k}",
                        "epoch": 1,
                    }
                )
    return _loglik(vectors), pd.DataFrame(labels)


def test_map_separates_base_models_and_lora_stays_closer():
    loglik, labels = _two_families()
    frame, explained = model_map(loglik, labels)
    assert list(frame.columns) == list(MAP_COLUMNS) and len(frame) == 14
    assert explained[0] > explained[1] > 0 and sum(explained) <= 1 + 1e-12
    summary = summarise(frame)
    assert summary.separation > 5
    assert summary.neighbour_agreement == 1.0 and summary.clusters_by_base
    assert summary.chance_agreement == pytest.approx(2 * 7 * 6 / (14 * 13))
    assert summary.to_base["lora"] < summary.to_base["full"]
    # PC1 is the direction between the two families: its sign splits them
    sides = frame.groupby("base_model")["x"].agg(["min", "max"])
    assert (sides.loc["llama", "max"] < sides.loc["qwen", "min"]) or (
        sides.loc["qwen", "max"] < sides.loc["llama", "min"]
    )


def test_projection_ignores_what_all_models_share():
    """Centring per text: a text that every model finds harder by the same amount moves nobody."""
    loglik, _ = _two_families()
    coords, explained = project(loglik_matrix(loglik))
    shifted = loglik.assign(loglik=loglik["loglik"] + loglik["text_id"].str[1:].astype(int) * 7.5)
    coords2, explained2 = project(loglik_matrix(shifted))
    np.testing.assert_allclose(coords2[["x", "y"]], coords[["x", "y"]], atol=1e-9)
    np.testing.assert_allclose(explained2, explained)


def test_mixed_base_models_are_not_called_clusters():
    """Two base models whose checkpoints interleave along one line: neighbours disagree, no cluster claim."""
    coords = pd.DataFrame(
        {
            "model_id": list("abcdef"),
            "base_model": ["p", "q"] * 3,
            "method": "full",
            "x": np.arange(6.0),
            "y": 0.0,
        }
    )
    summary = summarise(coords)
    assert summary.neighbour_agreement == 0 and not summary.clusters_by_base
    assert summary.chance_agreement == pytest.approx(2 * 3 * 2 / 30)


def test_distances_follow_the_log_likelihood_differences():
    """With two texts and three models on a line, the map is that line, distances preserved."""
    loglik = _loglik({"a": np.array([0.0, 0.0]), "b": np.array([3.0, 4.0]), "c": np.array([6.0, 8.0])})
    coords, explained = project(loglik_matrix(loglik))
    points = coords.set_index("model_id")[["x", "y"]]
    assert explained[0] == pytest.approx(1.0)
    assert math.dist(points.loc["a"], points.loc["b"]) == pytest.approx(5.0)
    assert math.dist(points.loc["a"], points.loc["c"]) == pytest.approx(10.0)


def test_too_few_models_is_a_clear_error_and_one_base_model_a_note(tmp_path, released_table):
    from evaluation.importer import import_released

    with pytest.raises(MissingInputError, match="at least 3 models"):
        project(loglik_matrix(_loglik({"a": np.zeros(4), "b": np.ones(4)})))
    loglik, labels = _two_families()
    frame, _ = model_map(loglik, labels[labels["base_model"] == "llama"])
    summary = summarise(frame)
    assert math.isnan(summary.separation) and summary.to_base["lora"] < summary.to_base["full"]
    report = build_report(Inputs(scores=import_released(released_table).scores, model_map=frame), tmp_path)
    section = next(s for s in report.sections if s.title == "Model map")
    assert "cannot be measured" in section.notes[0] and "Median distance" in section.sentences[0]
    assert (tmp_path / "figures/model_map.png").exists()


def test_text_set_takes_the_same_share_of_each_source():
    texts = text_set({"b": [f"b{i}" for i in range(10)], "a": [f"a{i}" for i in range(3)]}, per_dataset=4)
    assert texts.groupby("dataset").size().to_dict() == {"a": 3, "b": 4}
    assert texts["text"].tolist()[:3] == ["a0", "a1", "a2"] and (texts["prompt"] == "").all()
    assert texts["id"].is_unique


def test_report_states_the_map_finding(tmp_path, released_table):
    from evaluation.importer import import_released

    loglik, labels = _two_families()
    frame, _ = model_map(loglik, labels)
    report = build_report(Inputs(scores=import_released(released_table).scores, model_map=frame), tmp_path)
    section = next(s for s in report.sections if s.title == "Model map")
    assert not section.notes
    assert "models cluster by base model" in section.sentences[0] and "100% of them" in section.sentences[0]
    assert f"{summarise(frame).separation:.1f} times" in section.sentences[0]
    assert "lora" in section.sentences[1] and "full" in section.sentences[1]
    assert (tmp_path / "figures/model_map.png").stat().st_size > 10_000
    assert "Model map" in (tmp_path / "report.md").read_text()


# ---------------------------------------------------------------- CLI on tiny real models


def _kept(root: Path, base: Path, base_name: str, method: str) -> str:
    """Epoch 1 of a real job's run, as training leaves it (tests/release_fixtures.py: perturbed weights, run.json)."""
    from tests.release_fixtures import make_job, write_checkpoint

    job = make_job(base_name, "demo_facts", method)
    write_checkpoint(job, 1, root, base)
    return f"{job.run_id}/epoch-01"


def _cli(*options: str) -> int:
    return run_command("python -m analysis map", cli_map, list(options))


def test_cli_maps_base_full_and_lora_models_and_resumes(tiny_llama, tiny_qwen2, tmp_path, capsys):
    from evaluation.perplexity import load_model, reference_perplexity

    root = tmp_path / "root"
    llama_full, llama_lora = (_kept(root, tiny_llama, "tiny-llama", method) for method in ("full", "lora"))
    qwen_full = _kept(root, tiny_qwen2, "tiny-qwen2", "full")
    texts = tmp_path / "texts.jsonl"
    pd.DataFrame(
        {"text": [f"###Question: what is {i} plus {i}?\n###Answer: {2 * i}" for i in range(6)]}
    ).to_json(texts, orient="records", lines=True)

    assert _cli("--root", str(root), "--texts", str(texts), "--batch-size", "4") == 0
    assert "5 model(s) scored on 6 texts, 0 already done; map of 5 models" in capsys.readouterr().out
    frame = pd.read_parquet(root / "model_map.parquet")
    assert sorted(frame["model_id"]) == sorted(
        [llama_full, llama_lora, qwen_full, "tiny-llama", "tiny-qwen2"]
    )
    assert frame.set_index("model_id").loc[llama_lora, "method"] == "lora"
    assert np.isfinite(frame[["x", "y", "mean_loglik"]].to_numpy()).all()

    # each log-likelihood is the plain per-text computation (the LoRA one with the adapter applied)
    loglik = pd.read_parquet(root / "model_loglik.parquet")
    model, tokenizer, _ = load_model(tiny_llama, "cpu")
    first = pd.read_json(texts, lines=True)["text"][0]
    expected = -reference_perplexity(model, tokenizer, "", first)["full"][0]
    got = loglik.set_index(["model_id", "text_id"]).loc[("tiny-llama", "texts-0"), "loglik"]
    assert got == pytest.approx(expected, rel=1e-4)
    lora_ll = loglik.set_index(["model_id", "text_id"]).loc[(llama_lora, "texts-0"), "loglik"]
    assert lora_ll != pytest.approx(got, rel=1e-6)  # the adapter was applied

    assert _cli("--root", str(root), "--texts", str(texts)) == 0
    assert "0 model(s) scored on 6 texts, 5 already done" in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_parquet(root / "model_map.parquet"), frame)


def test_cli_without_texts_or_checkpoints_says_what_is_missing(tiny_llama, tmp_path, capsys):
    assert _cli("--root", str(tmp_path / "empty")) == 2
    assert "no kept checkpoints" in capsys.readouterr().err
    root = tmp_path / "root"
    _kept(root, tiny_llama, "tiny-llama", "full")
    assert _cli("--root", str(root), "--only", "colour=red") == 2
    assert "unknown key 'colour'" in capsys.readouterr().err
    assert _cli("--root", str(root)) == 2
    assert "no prepared training data" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "x"}\n')
    assert _cli("--root", str(root), "--texts", str(bad)) == 2
    assert "has no 'text' column" in capsys.readouterr().err
