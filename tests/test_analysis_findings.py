"""The study's findings as the report states them, checked against values computed here, independently,
from the released CSV with pandas and scipy; and the statistics behind them on hand-made tables."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import factors, predictors, sections, synergy
from analysis.common import bh_adjust
from analysis.config import DEFAULT_CONFIG
from analysis.context import Context, Inputs, Section
from analysis.gains import compute_gains
from tests.analysis_tables import row, table

COPIED = ("shared_scores", "duplicate_scores")


def _csv_ids(csv: pd.DataFrame) -> pd.Series:
    """The importer's model ids, spelled out here from the CSV's metadata."""
    return pd.Series(
        [
            r.model_name
            if r.data_name == "pretrain"
            else f"{r.model_name}/{r.data_name.replace('/', '_')}/{'lora' if r.lora is True else 'full'}/"
            f"{int(r.data_size)}/{r.lr_strategy}/epoch-{r.epoch:02d}"
            for r in csv.itertuples()
        ],
        index=csv.index,
    )


@pytest.fixture(scope="module")
def study(released_report, released_table):
    """(tables folder, the CSV with ``model_id``, ``copied`` from the importer's findings, markdown)."""
    report, out, _, imported = released_report
    csv = pd.read_csv(released_table)
    csv["model_id"] = _csv_ids(csv)
    findings = imported.findings
    copied = {m for p in findings["shared_scores"] for m in p["model_ids"]}
    copied |= {m for g in findings["duplicate_score_vectors"] for m in g["model_ids"]}
    csv["copied"] = csv["model_id"].isin(copied)
    csv["method"] = np.where(csv["lora"].eq(True), "lora", "full")
    assert csv.loc[csv["copied"], "model_id"].nunique() == len(copied)  # the ids match the importer's
    return out / "tables", csv, (out / "report.md").read_text()


def _tables(folder, name: str) -> pd.DataFrame:
    return pd.read_parquet(folder / f"{name}.parquet")


# Stratum label -> rows of the CSV in it (fine-tuned, method-paired regimes of the paper).
STRATA = {
    "single datasets, 1000 samples, cosine, epoch 10": lambda c: (
        (c["data_size"] == 1000)
        & (c["lr_strategy"] == "cosine")
        & ~c["data_name"].isin(["all", "pretrain"])
        & ~c["data_name"].str.startswith("w/o-")
    ),
    "all (mixture), 10000 samples, cosine, epochs 1-10": lambda c: c["data_name"] == "all",
    "w/o-X, 9000 samples, cosine, epoch 10": lambda c: c["data_name"].str.startswith("w/o-"),
}


@pytest.mark.slow
@pytest.mark.parametrize("stratum", list(STRATA))
@pytest.mark.parametrize(
    ("column", "task"),
    [
        ("mtbench-total", "mtbench-total"),
        ("alpaca_eval_v2-total", "alpaca_eval_v2-win_rate"),
        ("gsm8k-0shot", "gsm8k-0shot"),
    ],
)
def test_lora_vs_full_per_stratum_matches_the_csv(study, stratum, column, task):
    folder, csv, _ = study
    rows = csv[STRATA[stratum](csv)]
    keys = ["model_name", "data_name", "epoch"]
    full = rows[rows["method"] == "full"].set_index(keys)
    lora = rows[rows["method"] == "lora"].set_index(keys)
    both = full[[column, "copied"]].merge(
        lora[[column, "copied"]], left_index=True, right_index=True, suffixes=("_full", "_lora")
    )
    both = both.dropna(subset=[f"{column}_full", f"{column}_lora"])
    # the base row cancels in a paired difference: full - lora of the gains = full - lora of the scores
    kept = both[~(both["copied_full"] | both["copied_lora"])]
    diffs = (kept[f"{column}_full"] - kept[f"{column}_lora"]).round(9)  # equal scores tie exactly
    got = (
        _tables(folder, "factor_comparisons")
        .query("factor == 'method' and stratum == @stratum and task == @task")
        .iloc[0]
    )
    assert got["n_pairs"] == len(diffs) and got["n_dropped_copied"] == len(both) - len(kept)
    assert got["mean_diff"] == pytest.approx(diffs.mean())
    assert got["share_a_wins"] == pytest.approx((diffs > 0).mean())
    assert got["p_value"] == pytest.approx(stats.wilcoxon(diffs).pvalue, rel=1e-6)


@pytest.mark.slow
def test_the_two_main_regimes_of_lora_vs_full_are_reported_apart(study):
    folder, _, markdown = study
    strata = _tables(folder, "factor_strata").set_index(["factor", "stratum"])
    single = strata.loc[("method", "single datasets, 1000 samples, cosine, epoch 10")]
    mixture = strata.loc[("method", "all (mixture), 10000 samples, cosine, epochs 1-10")]
    # opposite significant effects: pooling them would hide both
    assert single["n_b_better"] > single["n_a_better"] and mixture["n_a_better"] > mixture["n_b_better"]
    assert (
        f"{int(single['n_pairs'])} pairs over 29 benchmarks ({int(single['n_dropped_copied'])} pairs dropped: copied rows)"
        in markdown
    )


@pytest.mark.slow
def test_cosine_vs_constant_rests_on_copies_and_says_so(study):
    folder, csv, markdown = study
    constant = csv[(csv["lr_strategy"] == "constant") & (csv["epoch"] == 10) & (csv["data_size"] == 1000)]
    cosine = csv[(csv["lr_strategy"] == "cosine") & (csv["data_size"] == 1000) & (csv["method"] == "full")]
    pairs = constant.merge(cosine, on=["model_name", "data_name"], suffixes=("_c", "_k"))
    n_copied = int((pairs["copied_c"] | pairs["copied_k"]).sum())
    strata = _tables(folder, "factor_strata").set_index("factor").loc["lr_schedule"]
    assert strata["n_dropped_copied"] == 29 * n_copied and n_copied >= 20
    assert strata["n_pairs"] == 29 * (len(pairs) - n_copied)
    assert re.search(
        r"lr_schedule \(constant − cosine\).*dropped: copied rows\): too few to conclude", markdown
    )


@pytest.mark.slow
def test_leave_one_out_matches_the_csv(study):
    folder, csv, markdown = study
    loo = _tables(folder, "leave_one_out").set_index(["method", "removed", "task"])
    olmo = csv[(csv["model_name"] == "OLMo-7B-hf") & (csv["epoch"] == 10) & ~csv["copied"]]
    mixture = olmo[olmo["data_name"] == "all"].set_index("method")
    checked = 0
    for r in olmo[olmo["data_name"].str.startswith("w/o-")].itertuples():
        if r.method not in mixture.index:
            continue
        for column, task in (
            ("mtbench-total", "mtbench-total"),
            ("mmlu-0shot", "mmlu-0shot"),
            ("mbpp-0shot", "mbpp-0shot"),
        ):
            expected = csv.loc[r.Index, column] - mixture.loc[r.method, column]
            assert loo.loc[(r.method, r.data_name[4:], task), "diff"] == pytest.approx(expected)
            checked += 1
    assert checked >= 3 * 18  # 10 full + 8 LoRA w/o-X runs not copied
    assert len(loo.xs("lora", level="method").index.get_level_values("removed").unique()) == 8
    assert "## Leave one dataset out" in markdown and "2 runs left out as copied" in markdown


@pytest.mark.slow
def test_every_family_of_tests_is_bh_adjusted_like_scipy(study):
    folder, _, _ = study
    for name in ("factor_comparisons", "cross_lingual", "cross_lingual_groups", "size_best_epoch_test"):
        frame = _tables(folder, name)
        finite = frame["p_value"].notna()
        expected = stats.false_discovery_control(frame.loc[finite, "p_value"].to_numpy())
        assert np.allclose(frame.loc[finite, "p_adjusted"], expected), name
        assert frame.loc[~finite, "p_adjusted"].isna().all()


def test_bh_adjustment_matches_scipy_with_ties_and_gaps():
    p = np.array([0.01, 0.04, 0.04, np.nan, 0.2, 0.03, 0.5, 1e-6])
    adjusted = bh_adjust(p)
    assert np.isnan(adjusted[3])
    finite = ~np.isnan(p)
    assert np.allclose(adjusted[finite], stats.false_discovery_control(p[finite]))


@pytest.mark.slow
def test_format_learning_is_set_apart_and_headlines_use_one_scale(study):
    folder, csv, markdown = study
    formats = _tables(folder, "format_learning").set_index("task")
    base = csv[csv["data_name"] == "pretrain"]
    failing = int(((base["BoolQ-0shot"] >= 10) & (base["BoolQ-5shot"] < 0.1 * base["BoolQ-0shot"])).sum())
    assert formats.loc["boolq-5shot", "n_base_models_failing"] == failing == 10
    universal = [line for line in markdown.splitlines() if "strongest universal synergies" in line]
    assert len(universal) == 2 and not any("boolq-5shot" in line or "mtbench" in line for line in universal)
    assert "universally positive cells on format-learning benchmarks (boolq-5shot" in markdown
    summary = _tables(folder, "gain_summary").set_index("task")
    headline = next(line for line in markdown.splitlines() if "the largest mean gain is on" in line)
    listed = re.search(r"in percent \(([^)]*)\)", headline).group(1).split(", ")
    assert "mtbench-total" not in listed and not set(listed) & set(formats.index)
    best = summary.loc[listed, "mean_gain"].idxmax()
    assert f"the largest mean gain is on {best} ({summary.loc[best, 'mean_gain']:+.2f} points)" in headline


@pytest.mark.slow
def test_missing_findings_are_stated_with_their_tables(study):
    folder, csv, markdown = study
    pca = _tables(folder, "dataset_pca").set_index(["method", "component"])
    assert f"the first 5 components explain {pca.loc[('full', 5), 'cumulative']:.0%}" in markdown
    assert pca.loc[("full", 5), "null_cumulative"] < pca.loc[("full", 5), "cumulative"]
    # cross-lingual per pre-training language, and MMLU-jp vs CMMLU
    groups = _tables(folder, "cross_lingual_groups").set_index(["language", "source_task", "target_task"])
    japanese = csv[csv["model_name"].isin(["LLM-jp-3-7B", "Llama-3-Swallow-8B-v0.1", "Sarashina2-7B"])]
    base = japanese[japanese["data_name"] == "pretrain"].set_index("model_name")
    tuned = japanese[japanese["data_name"] != "pretrain"].dropna(subset=["mmlu-0shot", "jmmlu-0shot"])
    gain = tuned["jmmlu-0shot"] - tuned["model_name"].map(base["jmmlu-0shot"])
    row_ = groups.loc[("Japanese", "mmlu-0shot", "jmmlu-0shot")]
    assert row_["n_models"] == len(tuned) and row_["mean_target_gain"] == pytest.approx(gain.mean())
    assert "MMLU-jp vs CMMLU over all models" in markdown and "- Japanese base models" in markdown
    # best-epoch MT-Bench, 1k vs 20k
    best = _tables(folder, "size_best_epoch").query("task == 'mtbench-total'")
    assert len(best) == 27 and "20k vs 1k samples, each at its best epoch, mtbench-total" in markdown
    # the dataset-effect table itself
    assert "| dataset | mtbench-total | alpaca_eval_v2-win_rate | mmlu-0shot | gsm8k-0shot |" in markdown
    assert "python -m evaluation perplexity --grid paper" in markdown and "unknown" in markdown
    assert "also holds run-to-run noise" in markdown
    assert not re.search(r"\b\d+\.0 (models|pairs|benchmarks)", markdown)
    epochs = _tables(folder, "epoch_curves")
    assert {"mtbench-total", "alpaca_eval_v2-win_rate", "humaneval-0shot", "mbpp-0shot"} <= set(
        epochs["task"]
    )


@pytest.mark.slow
def test_every_section_names_the_tables_its_numbers_come_from(released_report):
    report, out, _, _ = released_report
    for section in report.sections:
        for source in section.sources:
            assert (out / source).exists(), source
        for shown in section.shown:
            assert (out / shown.source).exists()
        if section.sentences and not section.notes:
            assert section.sources, section.title
    markdown = (out / "report.md").read_text()
    assert markdown.count("Numbers from:") >= 8


def test_paired_differences_ignore_the_base_rows_flags_and_drop_copies():
    rows = [row(b, b, "pretrain", "base", "gsm8k", 10.0, flags="duplicate_scores") for b in ("A", "B")]
    for b, (full, lora) in {"A": (30.0, 20.0), "B": (25.0, 21.0)}.items():
        for d in ("d1", "d2"):
            rows.append(row(f"{b}/{d}/full", b, d, "full", "gsm8k", full))
            rows.append(
                row(
                    f"{b}/{d}/lora",
                    b,
                    d,
                    "lora",
                    "gsm8k",
                    lora,
                    flags="shared_scores" * (b == "B" and d == "d2"),
                )
            )
    gains = compute_gains(table(rows))
    assert gains["flagged"].all()  # every gain rests on a flagged base row ...
    pairs = factors.paired_differences(gains, "method", "full", "lora")
    assert not pairs.loc[~pairs["copied"], "flagged"].any()  # ... which cancels in a paired difference
    assert pairs["copied"].sum() == 1
    summary = factors.factor_comparisons(gains, {"method": ("full", "lora")}).iloc[0]
    assert summary["n_pairs"] == 3 and summary["n_dropped_copied"] == 1
    assert summary["mean_diff"] == pytest.approx((10 + 10 + 4) / 3) and summary["n_flagged"] == 0


def test_all_zero_cells_are_no_change_not_model_specific():
    cells = pd.DataFrame(
        {
            "base_model_name": ["A", "B", "A", "B"],
            "method": "full",
            "dataset": "d1",
            "task": ["longbench_v2-0shot", "longbench_v2-0shot", "gsm8k-0shot", "gsm8k-0shot"],
            "gain": [0.0, 0.0, 0.0, 2.0],
            "flagged": False,
        }
    )
    kinds = synergy.synergy_agreement(cells).set_index("task")["kind"]
    assert kinds["longbench_v2-0shot"] == "no-change" and kinds["gsm8k-0shot"] == "model-specific"


def _world(noise: float, seed: int = 0) -> pd.DataFrame:
    """Predictor values: gain = 1 - 2 log perplexity (+ noise), the same law for every base model."""
    rng = np.random.default_rng(seed)
    records = []
    for model in ("A", "B", "C", "D"):
        for d in range(6):
            log_ppl = rng.uniform(0.5, 3.0)
            for task in ("gsm8k-0shot", "mmlu-0shot"):
                records.append(
                    {
                        "base_model_name": model,
                        "method": "full",
                        "dataset": f"d{d}",
                        "task": task,
                        "gain": 1 - 2 * log_ppl + noise * rng.normal(),
                        "log_perplexity": log_ppl,
                        "mean_tokens": 100.0 + d,
                    }
                )
    return pd.DataFrame(records)


def test_leave_one_model_out_error_and_baseline():
    world = _world(noise=0.0)
    predictions = predictors.lomo_predictions(world, ("log_perplexity",))
    assert len(predictions) == 4 * 6 * 2
    # computed here: a new model's gain is predicted from its perplexity; the baseline is the dataset's
    # mean gain over the other models
    others = world[world["base_model_name"] != "A"].groupby(["dataset", "task"])["gain"].mean()
    a = predictions[predictions["base_model_name"] == "A"].set_index(["dataset", "task"])
    assert np.allclose(a["baseline"], others.loc[a.index])
    errors = predictors.prediction_errors(predictions).set_index(["scheme", "task"])
    overall = errors.loc[("leave-one-model-out", "all")]
    expected = (a["predicted"] - a["gain"]).abs()
    assert overall["model_mae"] < 0.05 < overall["baseline_mae"] and expected.max() < 0.2
    assert "beats its baseline" in predictors.verdict(errors.reset_index(), "leave-one-model-out")


def test_predictions_and_intervals_are_clipped_to_the_metric_range():
    world = _world(noise=0.0)
    world.loc[world["dataset"] == "d0", "log_perplexity"] = -40.0  # extrapolates to a gain of +81
    bounds = pd.DataFrame(
        {
            "base_model_name": ["A", "B", "C", "D"] * 2,
            "task": ["gsm8k-0shot"] * 4 + ["mmlu-0shot"] * 4,
            "low": -90.0,
            "high": 10.0,  # base scores of 90: at most +10 points
        }
    )
    clipped = predictors.lodo_predictions(world, ("log_perplexity",), bounds)
    raw = predictors.lodo_predictions(world, ("log_perplexity",))
    assert raw["predicted"].max() > 10 and clipped["predicted"].max() <= 10.0
    assert clipped["baseline"].between(-90, 10).all()
    # without a known base score the gain stays within the metric's span (+-100 percent points)
    far = pd.DataFrame({"base_model_name": ["new"], "task": ["mtbench-total"], "predicted_gain": [42.0]})
    assert predictors.clip_predictions(far, bounds, ["predicted_gain"])["predicted_gain"].iloc[0] == 9.0


def test_a_predictor_worse_than_its_baseline_is_called_so():
    world = _world(noise=0.0)
    rng = np.random.default_rng(5)
    world["log_perplexity"] = rng.uniform(0, 3, len(world))  # unrelated to the gain
    world.loc[world["dataset"] == "d3", "log_perplexity"] = 60.0  # and one wild extrapolation
    errors = predictors.prediction_errors(predictors.lodo_predictions(world, ("log_perplexity",)))
    line = predictors.verdict(errors, "leave-one-dataset-out")
    assert "WORSE than its baseline" in line and "do not use its predictions" in line


def test_demo_sized_data_labels_what_it_cannot_support(tmp_path):
    rows = [row(b, b, "pretrain", "base", "gsm8k", 10.0) for b in ("A", "B")]
    rows += [
        row(f"{b}/d/full{k}", b, f"d{k}", "full", "gsm8k", 10.0 + k) for b in ("A", "B") for k in range(4)
    ]
    gains = compute_gains(table(rows))
    layers = pd.DataFrame(
        [
            {
                "model_id": m,
                "layer": layer,
                "depth": float(layer),
                "module": "q",
                "frobenius": 1.0,
                "relative": 0.1 * (k + layer),
                "n_params": 4,
            }
            for k, m in enumerate(gains["model_id"].unique())
            for layer in range(2)  # 2-layer networks: two depth bins
        ]
    )
    ctx = Context(Inputs(scores=pd.DataFrame(), layers=layers), DEFAULT_CONFIG, tmp_path)
    ctx.tables["gains"] = gains
    section = Section("Layers")
    sections.layers_section(ctx, section)
    assert any("Not supported by this data" in n and "2 depth bins" in n for n in section.notes)
    assert not re.search(r"n = \d+\.0", " ".join(section.sentences))
    near = pd.DataFrame(
        {
            "model_id": ["a1", "a2", "b1", "b2"],
            "base_model": ["A", "A", "B", "B"],
            "method": ["base", "full", "base", "full"],
            "x": [0.0, 1.0, 1.05, 0.0],
            "y": [0.0, 0.0, 0.3, 0.35],
            "x_variance": 0.6,
            "y_variance": 0.3,
        }
    )
    ctx = Context(Inputs(scores=pd.DataFrame(), model_map=near), DEFAULT_CONFIG, tmp_path)
    section = Section("Model map")
    sections.model_map_section(ctx, section)
    assert (
        "not supported by this data" in section.sentences[0] and "only 2 base models" in section.sentences[0]
    )


def test_counts_and_plurals_read_as_integers():
    assert sections._plural(1, "finding") == "1 finding" and sections._plural(3, "finding") == "3 findings"
    stratum = pd.Series(
        {
            "factor": "method",
            "level_a": "full",
            "level_b": "lora",
            "stratum": "s",
            "n_tasks": 2.0,
            "n_pairs": 24.0,
            "n_dropped_copied": 1.0,
            "n_a_better": 1.0,
            "n_b_better": 0.0,
            "n_percent_tasks": 2.0,
            "mean_diff_percent_tasks": 0.5,
            "mtbench_mean_diff": math.nan,
        }
    )
    sentence = sections._stratum_sentence(stratum)
    assert "24 pairs over 2 benchmarks (1 pair dropped" in sentence and ".0" not in sentence.replace(
        "0.05", ""
    )


def test_rendered_report_escapes_text_and_lists_its_sources(tmp_path):
    from analysis.report import render_html, render_markdown

    section = Section("Odd <input>", sentences=["a <script>alert(1)</script> sentence", "- a bullet"])
    section.sources.append("tables/gains.parquet")
    page = render_html([section], "Title & more", tmp_path)
    assert "<script>" not in page and "&lt;script&gt;" in page and "Title &amp; more" in page
    assert "<li>a bullet</li>" in page and "tables/gains.parquet" in page
    markdown = render_markdown([section], "T")
    assert "## Odd <input>" in markdown and "- a bullet" in markdown
    assert "Numbers from: `tables/gains.parquet`." in markdown
