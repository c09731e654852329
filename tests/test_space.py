"""The Space's handlers, called directly on the 1,027 real imported rows: filters, search, sort, gain,
average, column groups, links, URL state, CSV, compare, findings and about."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from space_support import released_import, write_results_folder

from common.catalog import BASE_MODELS_BY_NAME, PAPER_BASE_MODELS
from common.cli import parse_options
from release.config import LicensePolicy
from space import __main__ as space_cli
from space import about, compare, findings
from space.__main__ import space_config
from space.browser import table_payload
from space.config import SpaceConfig
from space.data import Results, load_results, parse_score_column, read_results_folder
from space.table import GAIN, Filters, build_view, search_terms, to_csv
from space.ui import headline, source_markdown
from space.urlstate import decode, encode

CONFIG = SpaceConfig(endpoint="https://hub.example")


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
    return build_view(results, Filters(**filters)).frame


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
    empty = build_view(results, Filters(search="(.*"))
    assert "No models match" in empty.message and "'(.*'" in empty.message
    assert empty.frame.empty and list(empty.frame.columns)[:3] == ["rank", "model", "model id"]


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
    math = build_view(results, Filters(families=("math",)))
    assert math.score_columns == ["gsm8k-0shot", "gsm8k-4shot", "math-0shot"]
    assert set(math.frame.columns) >= set(math.score_columns)
    assert "mmlu-5shot" not in math.frame.columns
    expected = math.frame[math.score_columns].mean(axis=1).round(3)
    np.testing.assert_allclose(math.frame["average"], expected, atol=2e-3)
    four = build_view(results, Filters(families=("math",), shots=("4",)))
    assert four.score_columns == ["gsm8k-4shot"]
    pd.testing.assert_series_equal(four.frame["average"], four.frame["gsm8k-4shot"], check_names=False)
    judge = build_view(results, Filters(shots=("judge",)))
    assert all(c.startswith(("mtbench", "alpaca_eval")) for c in judge.score_columns)
    none = build_view(results, Filters(families=()))
    assert none.score_columns == [] and "no benchmark column selected" in none.message
    assert (
        parse_score_column("nq-25shot").shots == "25" and parse_score_column("mtbench-math").shots == "judge"
    )


def payload_of(results: Results, config: SpaceConfig = CONFIG, **kwargs) -> dict:
    return json.loads(table_payload(results, config, Filters(), **kwargs))


def link_of(payload: dict, row: int) -> str | None:
    links = payload["columns"]["link"]
    code = links["codes"][row]
    return None if code is None else links["values"][code]


def test_readable_names_and_links(results: Results) -> None:
    frame = view(results, sort_by="model id", descending=False)
    row = frame[frame["model id"].eq("OLMo-7B-hf/lima/full/1000/constant/epoch-04")].iloc[0]
    assert row["model"] == "OLMo-7B-hf · lima 1k · full · constant · epoch 4"
    # Every identity part is in the name: no two models share one (epoch 2 and 4 of a run differ).
    assert frame["model"].is_unique
    base = frame[frame["method"].eq("base")].iloc[0]
    assert base["model"] == f"{base['base model']} (base model)"
    # The browser links each row to its repo at its epoch revision, the full id kept as the title.
    linked = Results.from_leaderboard(
        results.leaderboard.assign(repo_id="org/OLMo-lima", revision="epoch-03")
    )
    assert link_of(payload_of(linked), 0) == "https://hub.example/org/OLMo-lima/tree/epoch-03"
    first = results.leaderboard.iloc[0]
    assert (
        link_of(payload_of(results), 0) == f"https://hub.example/{first['repo_id']}/tree/{first['revision']}"
    )
    assert first["revision"] == f"epoch-{int(first['epoch']):02d}"
    # Rows without a repo link to the external weights URL when one is configured, else to nothing.
    unpublished = Results.from_leaderboard(results.leaderboard.assign(repo_id=None, revision=None))
    external = SpaceConfig(weights_url="https://weights.example/massive-sft")
    assert link_of(payload_of(unpublished, external), 0) == "https://weights.example/massive-sft"
    assert link_of(payload_of(unpublished), 0) is None


def test_the_banner_links_the_results_dataset_page() -> None:
    hub = "http://127.0.0.1:9/datasets/org/results"
    assert source_markdown(hub) == f"[{hub}]({hub})"
    assert source_markdown(f"{hub}@release/v1") == f"[{hub}@release/v1]({hub}/tree/release%2Fv1)"
    assert source_markdown("/data/results") == "`/data/results`"  # a local folder has no page


def test_license_and_parameters_come_from_the_base_model(results: Results, results_folder: Path) -> None:
    board = results.leaderboard
    for name, rows in board.groupby("base_model_name"):
        model = BASE_MODELS_BY_NAME[name]
        assert set(rows["license"]) == {model.license} and set(rows["parameters"]) == {model.parameters_b}
    llama = view(results, licenses=("llama3",))
    assert set(llama["base model"]) == {"Meta-Llama-3-8B", "llama-3-chinese-8b", "Llama-3-Swallow-8B-v0.1"}
    nine = view(results, parameters=(9.2, 8.8))
    assert set(nine["base model"]) == {"Gemma2-9B", "Yi-1.5-9B"}
    assert len({m.license for m in PAPER_BASE_MODELS}) >= 3
    # The release publishes them (its cards read the same catalog; a config entry overrides it).
    published = pd.read_parquet(results_folder / "data" / "leaderboard.parquet")
    assert published.groupby("base_model_name")["license"].first()["Gemma2-9B"] == "gemma"
    assert (
        LicensePolicy().for_base("Sarashina2-7B") == "mit"
        and LicensePolicy().for_base("tiny") == "apache-2.0"
    )
    assert LicensePolicy(by_base_model={"Gemma2-9B": "other"}).for_base("Gemma2-9B") == "other"
    # A published column wins over the catalog; an unknown (demo) base model has none.
    relicensed = Results.from_leaderboard(board.assign(license="other", parameters=1.5))
    assert set(relicensed.leaderboard["license"]) == {"other"}
    demo = Results.from_leaderboard(
        board.drop(columns=["license", "parameters"]).assign(base_model_name="tiny-demo")
    )
    assert demo.leaderboard["license"].isna().all() and demo.leaderboard["parameters"].isna().all()
    assert "11 base model(s) of 6.9–9.2B parameters" in headline(results)


def test_payload_is_compact_json_of_every_row(results: Results) -> None:
    text = table_payload(results, CONFIG, Filters(methods=("lora",)), ["bad"])
    payload = json.loads(text)
    assert payload["rows"] == 1027 and len(payload["columns"]["model_id"]) == 1027
    assert payload["filters"]["methods"] == ["lora"] and payload["problems"] == ["bad"]
    names = payload["columns"]["base_model_name"]["values"]
    assert names == sorted(names)  # code order is value order: the browser sorts codes
    column = results.score_names.index("gsm8k-4shot")
    raw = np.array([np.nan if v is None else v for v in payload["raw"][column]])
    codes = payload["columns"]["base_model_name"]["codes"]
    reference = np.array([payload["gain_reference"][c][column] for c in codes], dtype=float)
    np.testing.assert_allclose(raw - reference, results.gain_values[:, column], atol=1e-3)
    assert "NaN" not in text


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
    assert payload_of(results, problems=problems)["problems"] == problems  # the page shows them
    licensed, problems = decode({"license": "llama3,gemma", "params": "7.3,x"}, results)
    assert licensed.licenses == ("llama3", "gemma") and licensed.parameters == (7.3,)
    assert problems == ["params='x' is not a number"]
    assert encode(Filters(parameters=(8.0, 7.3))) == "params=8%2C7.3"


def test_average_mixes_no_scales(results: Results) -> None:
    everything = build_view(results, Filters())
    assert "mtbench-total" in everything.score_columns
    assert not any(c.startswith("mtbench") for c in everything.averaged)
    assert "alpaca_eval_v2-win_rate" in everything.averaged
    frame = everything.frame
    np.testing.assert_allclose(frame["average"], frame[everything.averaged].mean(axis=1), atol=2e-3)
    assert "mean of the 21 percentage benchmark column(s)" in everything.message
    assert "mtbench on another scale: not averaged" in everything.message
    chat = build_view(results, Filters(families=("chat",)))
    # AlpacaEval (%) is averaged; MT-Bench (1-10) is shown but not mixed in.
    assert chat.averaged == ["alpaca_eval_v2-win_rate"] and "mtbench-total" in chat.score_columns
    judged = Results.from_leaderboard(results.leaderboard.drop(columns=["alpaca_eval_v2-win_rate"]))
    mtbench = build_view(judged, Filters(families=("chat",)))
    # Only 1-10 columns shown: they are averaged among themselves, and the message says so.
    assert mtbench.averaged == mtbench.score_columns and "1-10-scale" in mtbench.message


def test_csv_download_equals_the_view(results: Results) -> None:
    current = build_view(results, Filters(methods=("lora",), sort_by="mmlu-5shot"))
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
    # Absent sections: no plot, one caption naming the table and the command that makes it.
    for figure, caption in (
        findings.predictor_figure(results, None, None),
        findings.layers_figure(results),
        findings.model_map_figure(results),
    ):
        assert figure is None and "analysis/" in caption and "python -m analysis report" in caption
    # The report ran (some analysis table is published): the advice names the missing input instead.
    ran = Results.from_leaderboard(
        results.leaderboard, analysis={"synergy": findings.synergy_table(results)[0]}
    )
    _, caption = findings.layers_figure(ran)
    assert "python -m analysis layers" in caption and "--layers" in caption
    _, caption = findings.model_map_figure(ran)
    assert "python -m analysis map" in caption and "--model-map" in caption


def test_findings_default_to_a_benchmark_with_signal(results: Results) -> None:
    task = findings.default_task(results)
    column = results.score_names.index(task)
    tuned = results.leaderboard["method"].ne("base").to_numpy(dtype=bool)
    assert np.nanstd(results.gain_values[tuned, column]) > 5  # points of spread, not a flat line
    assert not task.startswith(("humaneval", "mtbench"))
    # A flat benchmark listed first (as HumanEval is in the demo) is never the default.
    flat = results.leaderboard.copy()
    flat["humaneval-0shot"] = 0.0
    assert findings.default_task(Results.from_leaderboard(flat)) != "humaneval-0shot"


def test_model_choices_never_send_the_whole_leaderboard(results: Results) -> None:
    first = compare.model_choices(results, "", [], 50)
    assert len(first) == 50 and all(" · " in name or "(base model)" in name for name, _ in first)
    olmo = compare.model_choices(results, "olmo lima lora", [], 50)
    assert olmo and all("OLMo-7B-hf" in i and "lima" in i and "/lora/" in i for _, i in olmo)
    kept = results.leaderboard["model_id"].iloc[-1]
    picked = compare.model_choices(results, "qwen", [kept], 5)
    assert picked[0][1] == kept and len(picked) == 6


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
    assert "No results are loaded" in build_view(nothing, Filters()).message


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
    monkeypatch.setenv("SPACE_TITLE", "Massive SFT demo release")  # the release's collection title
    namespace = runpy.run_path(str(Path(__file__).resolve().parents[1] / "space" / "app.py"), run_name="app")
    assert isinstance(namespace["demo"], gr.Blocks)
    assert namespace["config"].local_path == results_folder
    assert "1,027 models" in str(namespace["demo"].config)
    assert "# Massive SFT demo release" in str(namespace["demo"].config)
    assert "Over a thousand" not in str(namespace["demo"].config)
