"""The Space's handlers, called directly on the 1,027 real imported rows: filters, search, sort, gain,
average, column groups, links, URL state, CSV, compare, findings and about."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from space_support import released_import, write_results_folder

from common.cli import parse_options
from space import __main__ as space_cli
from space import about, compare, findings
from space.__main__ import space_config
from space.config import SpaceConfig
from space.data import Results, load_results, parse_score_column, read_results_folder
from space.table import GAIN, Filters, build_view, search_terms, to_csv
from space.ui import filters_from_widgets, table_outputs
from space.urlstate import decode, encode

CONFIG = SpaceConfig(endpoint="https://hub.example", max_rows=500)


@pytest.fixture(scope="module")
def imported(released_table: Path) -> tuple[pd.DataFrame, dict]:
    return released_import(released_table)


@pytest.fixture(scope="module")
def results_folder(imported, tmp_path_factory: pytest.TempPathFactory) -> Path:
    scores, quality = imported
    return write_results_folder(scores, quality, tmp_path_factory.mktemp("space"))


@pytest.fixture(scope="module")
def results(results_folder: Path) -> Results:
    return read_results_folder(results_folder, source=str(results_folder))


@pytest.fixture(scope="module")
def csv_table(released_table: Path) -> pd.DataFrame:
    return pd.read_csv(released_table, index_col=0)


def view(results: Results, **filters) -> pd.DataFrame:
    return build_view(results, Filters(**filters), CONFIG).frame


def test_loads_the_real_rows_with_release_columns(results: Results) -> None:
    board = results.leaderboard
    assert len(board) == 1027
    assert board["model_id"].is_unique
    assert {"language", "repo_id", "revision"} <= set(board.columns)
    assert set(board["language"]) == {"English", "Chinese", "Japanese"}
    assert "gsm8k-4shot" in results.score_names and "mtbench-total" in results.score_names
    assert results.quality and results.quality["n_rows"] == 1027


def test_choice_filters_match_the_csv(results: Results, csv_table: pd.DataFrame) -> None:
    assert len(view(results, methods=("lora",))) == int((csv_table["lora"] == True).sum())  # noqa: E712
    assert len(view(results, base_models=("OLMo-7B-hf",))) == 250
    assert len(view(results, languages=("Japanese",))) == int(
        csv_table["model_name"].isin(["LLM-jp-3-7B", "Llama-3-Swallow-8B-v0.1", "Sarashina2-7B"]).sum()
    )
    assert len(view(results, data_sizes=(20000,), schedules=("constant",))) == int(
        ((csv_table["data_size"] == 20000) & (csv_table["lr_strategy"] == "constant")).sum()
    )
    both = view(results, base_models=("Qwen2.5-7B",), datasets=("lima", "math"))
    assert set(both["dataset"]) == {"lima", "math"} and set(both["base model"]) == {"Qwen2.5-7B"}


def test_epoch_range(results: Results, csv_table: pd.DataFrame) -> None:
    frame = view(results, epoch_min=3, epoch_max=5)
    assert len(frame) == int(csv_table["epoch"].between(3, 5).sum())
    assert frame["epoch"].between(3, 5).all()
    assert len(view(results, epoch_min=9)) == int((csv_table["epoch"] >= 9).sum())


def test_search_takes_several_literal_terms(results: Results, csv_table: pd.DataFrame) -> None:
    assert search_terms("  OLMo   lima ") == ["olmo", "lima"]
    frame = view(results, search="olmo lima")
    expected = ((csv_table["model_name"] == "OLMo-7B-hf") & csv_table["data_name"].str.contains("lima")).sum()
    assert len(frame) == expected == 13  # lima and w/o-lima runs
    assert set(view(results, search="OLMO W/O-LIMA")["dataset"]) == {"w/o-lima"}
    assert len(view(results, search="w/o-lima")) == 2  # "/" and "-" are plain characters
    for pattern in ("(.*", "[a-z]+", "olmo.*", "\\d", "a|b"):
        assert len(view(results, search=pattern)) == 0, pattern
    empty = build_view(results, Filters(search="(.*"), CONFIG)
    assert "No models match" in empty.message and "'(.*'" in empty.message
    assert empty.shown.empty and list(empty.shown.columns)[:2] == ["rank", "model"]


def test_sort_by_any_column_both_ways(results: Results) -> None:
    down = view(results, sort_by="gsm8k-4shot")["gsm8k-4shot"]
    present = down.dropna()
    assert present.is_monotonic_decreasing and down.isna().sum() == 20
    assert down.iloc[-20:].isna().all()  # missing scores last
    up = view(results, sort_by="gsm8k-4shot", descending=False)["gsm8k-4shot"].dropna()
    assert up.is_monotonic_increasing and up.iloc[0] == present.min()
    by_model = view(results, sort_by="model", descending=False)["model"]
    assert list(by_model) == sorted(by_model)
    ranked = view(results, sort_by="rank", descending=False)
    assert ranked["rank"].iloc[0] == 1 and ranked["average"].iloc[0] == ranked["average"].max()


def test_gain_over_the_base_model(results: Results) -> None:
    raw = view(results, base_models=("OLMo-7B-hf",), datasets=("lima",), sort_by="model")
    gain = view(results, base_models=("OLMo-7B-hf",), datasets=("lima",), sort_by="model", mode=GAIN)
    base = view(results, base_models=("OLMo-7B-hf",), methods=("base",)).iloc[0]
    assert list(raw["model"]) == list(gain["model"])
    np.testing.assert_allclose(
        gain["gsm8k-4shot"], (raw["gsm8k-4shot"] - base["gsm8k-4shot"]).round(3), atol=2e-3
    )
    base_gain = view(results, methods=("base",), mode=GAIN)
    values = base_gain[[c for c in results.score_names if c in base_gain]].to_numpy(dtype=float)
    assert np.nanmax(np.abs(values)) == 0


def test_column_groups_and_average(results: Results) -> None:
    math = build_view(results, Filters(families=("math",)), CONFIG)
    assert math.score_columns == ["gsm8k-0shot", "gsm8k-4shot", "math-0shot"]
    assert set(math.frame.columns) >= set(math.score_columns)
    assert "mmlu-5shot" not in math.frame.columns
    expected = math.frame[math.score_columns].mean(axis=1).round(3)
    np.testing.assert_allclose(math.frame["average"], expected, atol=2e-3)
    four = build_view(results, Filters(families=("math",), shots=("4",)), CONFIG)
    assert four.score_columns == ["gsm8k-4shot"]
    pd.testing.assert_series_equal(four.frame["average"], four.frame["gsm8k-4shot"], check_names=False)
    judge = build_view(results, Filters(shots=("judge",)), CONFIG)
    assert all(c.startswith(("mtbench", "alpaca_eval")) for c in judge.score_columns)
    none = build_view(results, Filters(families=()), CONFIG)
    assert none.score_columns == [] and "no benchmark column selected" in none.message
    assert (
        parse_score_column("nq-25shot").shots == "25" and parse_score_column("mtbench-math").shots == "judge"
    )


def test_rendered_rows_are_capped_and_linked(results: Results) -> None:
    linked = results.leaderboard.assign(repo_id="org/OLMo-lima", revision="epoch-03")
    shown = build_view(Results.from_leaderboard(linked), Filters(), CONFIG)
    assert len(shown.frame) == 1027 and len(shown.shown) == 500
    assert "showing the first 500" in shown.message
    assert shown.shown["model"].iloc[0].endswith("(https://hub.example/org/OLMo-lima/tree/epoch-03)")
    assert shown.shown["model"].iloc[0].startswith("[")
    # The release stage names each released row's repo and epoch revision (its config's repo template).
    first = build_view(results, Filters(), CONFIG).frame.iloc[0]
    assert (
        build_view(results, Filters(), CONFIG)
        .shown["model"]
        .iloc[0]
        .endswith(f"(https://hub.example/{first['repo_id']}/tree/{first['revision']})")
    )
    assert first["revision"] == f"epoch-{int(first['epoch']):02d}"
    # Rows without a repo link to the external weights URL when one is configured, else to nothing.
    unpublished = Results.from_leaderboard(results.leaderboard.assign(repo_id=None, revision=None))
    external = SpaceConfig(weights_url="https://weights.example/massive-sft")
    row = build_view(unpublished, Filters(), external).shown["model"].iloc[0]
    assert row.endswith("(https://weights.example/massive-sft)")
    assert "](" not in build_view(unpublished, Filters(), CONFIG).shown["model"].iloc[0]


def test_url_round_trip_and_bad_parameters(results: Results) -> None:
    filters = Filters(
        base_models=("OLMo-7B-hf", "Qwen2.5-7B"),
        methods=("full",),
        data_sizes=(1000,),
        epoch_min=2,
        epoch_max=8,
        search="lima (x",
        families=("math", "code"),
        shots=("0",),
        mode=GAIN,
        sort_by="gsm8k-0shot",
        descending=False,
        datasets=("w/o-lima",),
    )
    query = encode(filters)
    params = dict(pair.split("=", 1) for pair in query.split("&"))
    from urllib.parse import parse_qsl

    decoded, problems = decode(dict(parse_qsl(query)), results)
    assert problems == [] and decoded == filters and "base" in params
    assert encode(Filters()) == ""
    bad = {
        "method": "nonsense",
        "epochs": "x-y",
        "size": "big",
        "mode": "loud",
        "sort": "nope",
        "order": "sideways",
        "utm_source": "ignored",
    }
    decoded, problems = decode(bad, results)
    assert len(problems) == 6 and any("nonsense" in p for p in problems)
    message, table, _ = table_outputs_for(results, decoded, problems)
    assert table.empty and "does not have" in message and "nonsense" in message


def table_outputs_for(results: Results, filters: Filters, problems: list[str]):
    from space.data import ResultsStore

    store = ResultsStore(CONFIG, results)
    message, table, query = table_outputs(store, filters, problems)
    return (
        message,
        table.value
        if isinstance(table.value, pd.DataFrame)
        else pd.DataFrame(table.value["data"], columns=table.value["headers"]),
        query,
    )


def test_widgets_map_to_default_filters(results: Results) -> None:
    families = list(dict.fromkeys(c.family for c in results.score_columns))
    shots = sorted({c.shots for c in results.score_columns}, key=lambda s: (not s.isdigit(), s.zfill(3)))
    filters = filters_from_widgets(
        results,
        [],
        [],
        [],
        ["lora"],
        [1000],
        [],
        0,
        10,
        " lima ",
        families,
        shots,
        "raw",
        "average",
        "descending",
    )
    assert filters == Filters(methods=("lora",), data_sizes=(1000,), search=" lima ")
    assert encode(filters) == "method=lora&size=1000&q=+lima+"


def test_csv_download_equals_the_view(results: Results) -> None:
    current = build_view(results, Filters(methods=("lora",), sort_by="mmlu-5shot"), CONFIG)
    frame = pd.read_csv(io.StringIO(to_csv(current)))
    assert len(frame) == current.count == 230
    assert list(frame["model"]) == list(current.frame["model"])
    np.testing.assert_allclose(frame["mmlu-5shot"], current.frame["mmlu-5shot"].astype(float))


def test_compare_two_to_four_models(results: Results) -> None:
    ids = results.leaderboard["model_id"].tolist()
    table, message = compare.compare_frame(results, ids[:3], "raw")
    assert list(table.columns) == ["benchmark", *ids[:3]] and "3 models" in message
    row = table.set_index("benchmark").loc["gsm8k-4shot"]
    board = results.leaderboard.set_index("model_id")
    assert row[ids[0]] == pytest.approx(board.loc[ids[0], "gsm8k-4shot"], abs=1e-3)
    assert isinstance(compare.compare_figure(table), go.Figure)
    assert len(compare.compare_figure(table).data) == 3
    for bad in ([ids[0]], ids[:5], ["no-such-model", ids[0]]):
        table, message = compare.compare_frame(results, bad, "raw")
        assert table.empty and "Pick 2 to 4" in message
    gains, _ = compare.compare_frame(results, ids[:2], GAIN)
    assert gains.shape[1] == 3


def test_findings_from_published_tables(results: Results) -> None:
    tables = {
        "synergy": pd.DataFrame(
            {
                "base_model_name": ["A", "A", "B", "B"],
                "method": "full",
                "dataset": ["lima", "math"] * 2,
                "task": "gsm8k-4shot",
                "gain": [1.0, -2.0, 0.5, 3.0],
                "flagged": False,
            }
        ),
        "model_correlation": pd.DataFrame(
            {
                "method": ["full"],
                "model_a": ["A"],
                "model_b": ["B"],
                "pearson": [0.4],
                "spearman": [0.3],
                "n_cells": [10],
            }
        ),
        "layer_correlation": pd.DataFrame(
            {
                "depth_bin": [0.1, 0.5, 0.9],
                "mean_frobenius": [1, 2, 3],
                "mean_relative": [0.1, 0.2, 0.3],
                "pearson": [0.1, 0.6, 0.2],
                "spearman": [0.1, 0.5, 0.2],
                "n_models": 4,
            }
        ),
        "model_map": pd.DataFrame(
            {
                "model_id": ["A", "A/full", "B"],
                "base_model": ["A", "A", "B"],
                "method": ["base", "full", "base"],
                "x": [0.0, 1.0, 5.0],
                "y": [0.0, 0.5, 1.0],
                "x_variance": 0.8,
                "y_variance": 0.15,
            }
        ),
        "predictor_values": pd.DataFrame(
            {
                "base_model_name": ["A", "A"],
                "dataset": ["lima", "math"],
                "task": "gsm8k-4shot",
                "gain": [1.0, 2.0],
                "perplexity": [3.0, 9.0],
                "log_perplexity": [1.1, 2.2],
                "ngram_overlap": [None, None],
            }
        ),
    }
    published = Results.from_leaderboard(results.leaderboard, analysis=tables)
    figure, caption = findings.synergy_figure(published, "A", "full")
    assert figure.data[0].type == "heatmap" and list(figure.data[0].y) == ["lima", "math"]
    assert "analysis/synergy.parquet" in caption
    figure, _ = findings.consistency_figure(published, "full")
    assert figure.data[0].z[0][1] == pytest.approx(0.4) and figure.data[0].z[0][0] == 1.0
    assert findings.predictor_options(published) == ["perplexity", "log_perplexity"]
    figure, _ = findings.predictor_figure(published, "perplexity", "gsm8k-4shot")
    assert list(figure.data[0].x) == [3.0, 9.0]
    figure, _ = findings.layers_figure(published)
    assert [t.name.split(" ")[0] for t in figure.data][:2] == ["pearson", "spearman"]
    figure, caption = findings.model_map_figure(published)
    assert [t.name for t in figure.data] == ["A (base)", "A (full)", "B (base)"]
    assert list(figure.data[1].text) == ["A/full"] and "80% of variance" in figure.layout.xaxis.title.text
    assert figure.data[0].marker.color == figure.data[1].marker.color != figure.data[2].marker.color


def test_findings_fall_back_to_the_leaderboard(results: Results) -> None:
    models, methods = findings.synergy_choices(results)
    assert "OLMo-7B-hf" in models and set(methods) == {"full", "lora"}
    figure, caption = findings.synergy_figure(results, "OLMo-7B-hf", "full")
    assert figure.data[0].type == "heatmap" and "computed in the app" in caption
    assert len(figure.data[0].y) == 10  # the ten SFT datasets of the main condition
    consistency, _ = findings.consistency_figure(results, "full")
    assert len(consistency.data[0].x) >= 10
    epochs, _ = findings.epoch_figure(results, "gsm8k-4shot")
    assert len(epochs.data) >= 2 and list(epochs.data[0].x) == sorted(epochs.data[0].x)
    lora, _ = findings.lora_full_figure(results)
    assert lora.data[0].type == "bar" and len(lora.data[0].x) > 10
    for figure, caption in (
        findings.predictor_figure(results, None, None),
        findings.layers_figure(results),
        findings.model_map_figure(results),
    ):
        assert figure.data == () and "analysis/" in caption and "python -m analysis report" in caption


def test_about_code_and_quality_notes(results: Results) -> None:
    lora = {
        "model_id": "m/lora",
        "method": "lora",
        "repo_id": "org/m",
        "revision": "epoch-03",
        "epoch": 3,
        "base_model_name": "OLMo-7B-hf",
    }
    code = about.download_code(lora)
    assert "PeftModel.from_pretrained(base, 'org/m', revision='epoch-03')" in code
    assert "from_pretrained('allenai/OLMo-7B-hf')" in code
    compile(code, "snippet", "exec")
    full = about.download_code({**lora, "method": "full"})
    assert "AutoModelForCausalLM.from_pretrained('org/m', revision='epoch-03')" in full
    assert "no published repository" in about.download_code({**lora, "repo_id": None})
    notes = about.quality_markdown(results.quality)
    assert notes.count("\n- ") == len(results.quality["summary"]) > 0
    assert "no quality.json" in about.quality_markdown(None)


def test_hub_failure_falls_back_to_the_local_folder(results_folder: Path) -> None:
    # Nothing listens on port 9 of 127.0.0.1: the download fails fast and the local copy is used.
    config = SpaceConfig(repo="org/results", endpoint="http://127.0.0.1:9", local_path=results_folder)
    loaded = load_results(config)
    assert len(loaded.leaderboard) == 1027 and loaded.source == str(results_folder)
    assert "Could not load the results dataset" in loaded.warnings[0]
    nothing = load_results(SpaceConfig())
    assert nothing.leaderboard.empty and "No results configured" in nothing.warnings[0]
    assert "No results are loaded" in build_view(nothing, Filters(), CONFIG).message


def test_cli_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch, results_folder: Path) -> None:
    monkeypatch.setenv("SPACE_RESULTS_REPO", "env/repo")
    monkeypatch.setenv("SPACE_RESULTS_REVISION", "v1")
    config = space_config(parse_options(space_cli, []))
    assert (config.repo, config.revision) == ("env/repo", "v1")
    config = space_config(
        parse_options(
            space_cli,
            [
                "--results",
                "cli/repo",
                "--revision",
                "v2",
                "--port",
                "7999",
                "--endpoint",
                "http://127.0.0.1:1234/",
            ],
        )
    )
    assert (config.repo, config.revision, config.port, config.endpoint) == (
        "cli/repo",
        "v2",
        7999,
        "http://127.0.0.1:1234",
    )
    local = space_config(parse_options(space_cli, ["--results", str(results_folder)]))
    assert local.repo is None and local.local_path == results_folder


def test_spaces_entry_point_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, results_folder: Path
) -> None:
    import runpy

    import gradio as gr

    monkeypatch.delenv("SPACE_RESULTS_REPO", raising=False)
    monkeypatch.setenv("SPACE_RESULTS_PATH", str(results_folder))
    namespace = runpy.run_path(str(Path(__file__).resolve().parents[1] / "space" / "app.py"), run_name="app")
    assert isinstance(namespace["demo"], gr.Blocks)
    assert namespace["config"].local_path == results_folder
    assert "1,027 models" in str(namespace["demo"].config)
