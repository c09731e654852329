"""Model/dataset/Space cards: front matter that huggingface_hub parses back, bodies that data cannot break."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from huggingface_hub import ModelCard

from common.gains import compute_gains
from common.paths import PROJECT_ROOT
from common.schema import conform
from release.cards import ModelResults, dataset_ids, md_escape, model_card, space_readme
from release.config import ReleaseConfig
from release.inputs import Checkpoint, ModelGroup

NASTY = 'evil "name": #1 | *bold* <script>alert(1)</script>\nsecond: line'


def _scores(model_id: str, dataset: str) -> pd.DataFrame:
    rows = [
        {
            "model_id": mid,
            "base_model": "org/base",
            "base_model_name": "base",
            "dataset": ds,
            "method": method,
            "data_size": size,
            "epoch": epoch,
            "lr_schedule": sched,
            "benchmark": "gsm8k",
            "shots": 4,
            "metric": "exact_match",
            "value": value,
            "source": "lm-eval",
            "harness_version": "x",
            "evaluated_at": "2025-01-01",
            "flags": "",
        }
        for mid, ds, method, size, epoch, sched, value in [
            (model_id, dataset, "full", 1000, 2, "cosine", 42.5),
            ("base", "pretrain", "base", 0, 0, "none", 40.0),
        ]
    ]
    return conform(pd.DataFrame(rows))


def _results(model_id: str, dataset: str) -> ModelResults:
    """What the release hands the cards: the scores and their published gains table."""
    scores = _scores(model_id, dataset)
    return ModelResults.build(scores, compute_gains(scores))


def _card(dataset: str = NASTY, base_name: str = "base", **record) -> tuple[str, str]:
    identity = {
        "base_model": "org/base",
        "base_model_name": base_name,
        "dataset": dataset,
        "method": "full",
        "data_size": 1000,
        "lr_schedule": "cosine",
    }
    checkpoint = Checkpoint(2, "run/epoch-02", None, {"job": {"epochs": 2, "learning_rate": 1e-5}, **record})
    group = ModelGroup(
        "ns/base-evil-full-1000-cosine",
        identity,
        [Checkpoint(1, "run/epoch-01", None), checkpoint],
        "org/base",
    )
    config = ReleaseConfig(namespace="ns", dataset_ids={dataset: f"org/{dataset}"})
    return model_card(
        group=group,
        checkpoint=checkpoint,
        config=config,
        results=_results("run/epoch-02", dataset),
        mode="weights",
    ), dataset


def test_front_matter_round_trips_special_characters(tmp_path: Path) -> None:
    text, dataset = _card()
    (tmp_path / "README.md").write_text(text)
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.datasets == [f"org/{dataset}"]  # exact, newline and quotes included
    assert card.data.license == "apache-2.0"
    assert card.data.base_model == "org/base"
    assert card.data.base_model_relation == "finetune"
    assert card.data.library_name == "transformers"
    assert card.data.pipeline_tag == "text-generation"
    result = card.data.eval_results[0]
    assert (result.dataset_type, result.metric_type, result.metric_value) == ("gsm8k", "exact_match", 42.5)


def test_body_escapes_data_values() -> None:
    text, _ = _card()
    body = text.split("---\n", 2)[2]
    assert "<script>" not in body and "&lt;script&gt;" in body
    assert "\\*bold\\*" in body and "\\|" in body
    # every table row still has the same number of cells as its header
    for line in body.splitlines():
        if line.startswith("| SFT dataset"):
            assert line.replace("\\|", "").count("|") == 3
    assert "| gsm8k-4shot | exact\\_match | 42.50 | 40.00 | 2.50 |" in body
    assert 'revision="epoch-02"' in body and "arXiv:2506.14681" in body and "Harada" in body


def test_md_escape_single_line() -> None:
    assert "\n" not in md_escape("a\nb\r\nc")
    assert md_escape(None) == "–"


def test_adapter_card_metadata() -> None:
    identity = {
        "base_model": "local/b",
        "base_model_name": "b",
        "dataset": "lima",
        "method": "lora",
        "data_size": 1000,
        "lr_schedule": "cosine",
    }
    checkpoint = Checkpoint(1, "m", None)
    group = ModelGroup("ns/x", identity, [checkpoint], "ns/b")
    config = ReleaseConfig(
        namespace="ns", external_weights_url="https://example.org/weights", dataset_ids={"lima": "GAIR/lima"}
    )
    text = model_card(
        group=group, checkpoint=checkpoint, config=config, results=_results("zz", "lima"), mode="results-only"
    )
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["base_model_relation"] == "adapter" and meta["datasets"] == ["GAIR/lima"]
    assert "model-index" not in meta
    # no weights in a results-only repo: no library_name (the Hub would offer loading code for absent
    # files); the metadata and the text say where the weights are, and nothing loads them from this repo
    assert "library_name" not in meta and "weights-hosted-externally" in meta["tags"]
    assert meta["external_weights_url"] == "https://example.org/weights"
    assert (
        "at <https://example.org/weights>" in text
        and "AutoPeftModelForCausalLM.from_pretrained(path)" in text
    )
    assert "This repository has no weights" in text and 'from_pretrained("ns/x"' not in text
    assert "hosting(" not in text and "| license | apache-2.0 (inherited from the base model) |" in text


def test_demo_dataset_names_are_not_listed_as_hub_ids() -> None:
    assert dataset_ids("demo_facts", {}) == []
    assert dataset_ids("lima", {"lima": "GAIR/lima"}) == ["GAIR/lima"]
    mapping = {"lima": "GAIR/lima", "flan": "flan_without_hub_id", "alpaca": "yahma/alpaca-cleaned"}
    assert dataset_ids("all", mapping) == ["GAIR/lima", "yahma/alpaca-cleaned"]
    assert dataset_ids("w/o-lima", mapping) == ["yahma/alpaca-cleaned"]


def test_weights_card_shows_generation_with_the_study_template() -> None:
    text, _ = _card()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    assert 'revision="epoch-02"' in code and "model.generate(" in code
    assert 'prompt = "###Question: ' in code and '\\n###Answer: "' in code


def test_one_citation_everywhere() -> None:
    """README, cards and the Space cite the paper with the same BibTeX (authors' full names)."""
    from common.citation import BIBTEX
    from space import about

    readme = (PROJECT_ROOT / "README.md").read_text()
    assert BIBTEX in readme and about.CITATION == BIBTEX
    text, _ = _card()
    assert BIBTEX in text and "Yuto Harada" in text and "Yuto Harada" in about.STUDY


def test_space_readme_pins_sdk() -> None:
    meta = yaml.safe_load(space_readme(config=ReleaseConfig(namespace="ns")).split("---\n")[1])
    assert (meta["sdk"], meta["sdk_version"], meta["app_file"]) == ("gradio", "6.31.0", "app.py")


def test_strict_undefined(tmp_path: Path) -> None:
    import jinja2

    from release.cards import render

    (tmp_path / "t.md.j2").write_text("{{ front_matter }}{{ missing }}")
    with pytest.raises(jinja2.UndefinedError):
        render("t.md.j2", {}, templates_dir=tmp_path)
