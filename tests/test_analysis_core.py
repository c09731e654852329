"""Each analysis on small hand-made score tables whose right answers are known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.common import MissingInputError
from analysis.consistency import gain_pca, model_correlations, variance_decomposition
from analysis.factors import cross_lingual, epoch_curves, factor_comparisons
from analysis.gains import compute_gains
from analysis.layer_correlation import layer_gain_correlation
from analysis.predictors import (
    lodo_predictions,
    perplexity_features,
    prediction_errors,
    predictor_correlations,
    predictor_summary,
    predictor_values,
)
from analysis.synergy import resolve_main_condition, synergy_agreement, synergy_table
from tests.analysis_tables import row, synergy_scores, table


def test_gain_is_score_minus_same_base_benchmark_and_shots():
    scores = table(
        [
            row("A", "A", "pretrain", "base", "gsm8k", 40.0, shots=4),
            row("A", "A", "pretrain", "base", "gsm8k", 30.0, shots=0, flags="scale_suspect"),
            row("B", "B", "pretrain", "base", "gsm8k", 10.0, shots=4),
            row("A/d1", "A", "d1", "full", "gsm8k", 45.5, shots=4),
            row("A/d1", "A", "d1", "full", "gsm8k", 29.0, shots=0),
            row("B/d1", "B", "d1", "lora", "gsm8k", 12.0, shots=4),
            row("C/d1", "C", "d1", "lora", "gsm8k", 12.0, shots=4),  # no base row: no gain
        ]
    )
    gains = compute_gains(scores).set_index(["model_id", "task"])
    assert gains.loc[("A/d1", "gsm8k-4shot"), "gain"] == pytest.approx(5.5)
    assert gains.loc[("A/d1", "gsm8k-0shot"), "gain"] == pytest.approx(-1.0)
    assert gains.loc[("B/d1", "gsm8k-4shot"), "gain"] == pytest.approx(2.0)
    assert bool(gains.loc[("A/d1", "gsm8k-0shot"), "flagged"])  # the base row is flagged
    assert not bool(gains.loc[("A/d1", "gsm8k-4shot"), "flagged"])
    assert "C/d1" not in gains.index.get_level_values(0)


def test_no_base_rows_is_a_clear_error():
    scores = table([row("A/d1", "A", "d1", "full", "gsm8k", 45.0)])
    with pytest.raises(MissingInputError, match="no base-model rows"):
        compute_gains(scores)


SYNERGY = {
    ("A", "d1", "b1"): 1.0,
    ("B", "d1", "b1"): 2.0,
    ("C", "d1", "b1"): 3.0,
    ("A", "d2", "b1"): 1.0,
    ("B", "d2", "b1"): -1.0,
    ("C", "d2", "b1"): 2.0,
    ("A", "d3", "b1"): -2.0,
    ("B", "d3", "b1"): -1.0,
    ("C", "d3", "b1"): -4.0,
}


def test_synergy_sign_shares_and_universal_cells():
    gains = compute_gains(synergy_scores(SYNERGY))
    condition = resolve_main_condition(gains)
    assert (condition.data_size, condition.epoch, condition.schedule) == (1000, 10, "cosine")
    agreement = synergy_agreement(synergy_table(gains, condition)).set_index("dataset")
    assert agreement.loc["d1", "kind"] == "universal-positive"
    assert agreement.loc["d3", "kind"] == "universal-negative"
    assert agreement.loc["d2", "kind"] == "model-specific"
    assert agreement.loc["d2", "share_same_sign"] == pytest.approx(2 / 3)
    assert agreement.loc["d1", "mean_gain"] == pytest.approx(2.0)


def test_main_condition_excludes_other_epochs_sizes_and_schedules():
    scores = pd.concat(
        [
            synergy_scores(SYNERGY),
            synergy_scores({("A", "d1", "b1"): 99.0}, epoch=3).query("method != 'base'"),
            synergy_scores({("A", "d1", "b1"): 99.0}, size=20000).query("method != 'base'"),
        ]
    )
    scores["model_id"] = [
        f"{m}/{i}" if meth != "base" else m
        for i, (m, meth) in enumerate(zip(scores["model_id"], scores["method"], strict=False))
    ]
    gains = compute_gains(table(scores.to_dict("records")))
    synergy = synergy_table(gains, resolve_main_condition(gains))
    assert synergy.set_index(["base_model_name", "dataset"]).loc[("A", "d1"), "gain"] == pytest.approx(1.0)


def test_model_correlations_and_variance_decomposition():
    # gain = dataset effect (-1, +1) + model effect (-2, +2): no interaction; shares 0.2 / 0.8 / 0
    gains_in = {
        ("A", "d1", "b1"): -3.0,
        ("B", "d1", "b1"): 1.0,
        ("A", "d2", "b1"): -1.0,
        ("B", "d2", "b1"): 3.0,
        ("A", "d1", "b2"): 1.0,
        ("B", "d1", "b2"): 2.0,
        ("A", "d2", "b2"): 5.0,
        ("B", "d2", "b2"): 3.0,
    }
    synergy = synergy_table(
        compute_gains(synergy_scores(gains_in)),
        resolve_main_condition(compute_gains(synergy_scores(gains_in))),
    )
    decomposition = variance_decomposition(synergy).set_index("task")
    assert decomposition.loc["b1-0shot", "share_dataset"] == pytest.approx(0.2)
    assert decomposition.loc["b1-0shot", "share_model"] == pytest.approx(0.8)
    assert decomposition.loc["b1-0shot", "share_interaction"] == pytest.approx(0.0, abs=1e-12)
    pairs = model_correlations(synergy, min_cells=3)
    a = [-3.0, 1.0, -1.0, 5.0]  # A's cells ordered (d1,b1), (d1,b2), (d2,b1), (d2,b2)
    b = [1.0, 2.0, 3.0, 3.0]
    assert pairs["pearson"].iloc[0] == pytest.approx(stats.pearsonr(a, b)[0])
    assert pairs["spearman"].iloc[0] == pytest.approx(stats.spearmanr(a, b)[0])


def test_correlation_needs_enough_cells():
    synergy = synergy_table(
        *(lambda g: (g, resolve_main_condition(g)))(
            compute_gains(synergy_scores({("A", "d1", "b1"): 1.0, ("B", "d1", "b1"): 2.0}))
        )
    )
    pairs = model_correlations(synergy, min_cells=3)
    assert math.isnan(pairs["pearson"].iloc[0]) and pairs["n_cells"].iloc[0] == 1


def test_pca_explained_variance_of_rank_one_gains():
    rng = np.random.default_rng(0)
    loadings = np.array([1.0, -2.0, 0.5])
    gains_in = {}
    for _m, model in enumerate("ABCD"):
        for d in range(3):
            score = rng.normal()
            for t, weight in enumerate(loadings):
                gains_in[(model, f"d{d}", f"b{t}")] = score * weight
    synergy = synergy_table(
        compute_gains(synergy_scores(gains_in)),
        resolve_main_condition(compute_gains(synergy_scores(gains_in))),
    )
    explained, scores = gain_pca(synergy)
    assert explained["explained_variance_ratio"].iloc[0] == pytest.approx(1.0)
    assert len(scores) == 12


def _pair_scores(diffs: list[float]) -> pd.DataFrame:
    rows = [row("A", "A", "pretrain", "base", "b1", 50.0)]
    for i, diff in enumerate(diffs):
        rows.append(row(f"full{i}", "A", f"d{i}", "full", "b1", 50.0 + diff))
        rows.append(row(f"lora{i}", "A", f"d{i}", "lora", "b1", 50.0))
    return table(rows)


def test_lora_vs_full_wilcoxon_and_win_shares():
    diffs = [1.0, 2.0, 3.0, -1.0, 4.0, 0.0]
    comparison = factor_comparisons(compute_gains(_pair_scores(diffs)), {"method": ("full", "lora")}).iloc[0]
    assert comparison["n_pairs"] == 6
    assert comparison["mean_diff"] == pytest.approx(np.mean(diffs))
    assert comparison["share_a_wins"] == pytest.approx(4 / 6)
    assert comparison["share_b_wins"] == pytest.approx(1 / 6)
    assert comparison["share_ties"] == pytest.approx(1 / 6)
    assert comparison["p_value"] == pytest.approx(stats.wilcoxon(diffs, zero_method="wilcox").pvalue)


def test_epoch_curves_mean_and_spread():
    rows = [row(b, b, "pretrain", "base", "b1", 50.0) for b in "AB"]
    for epoch, (ga, gb) in {1: (1.0, 3.0), 2: (4.0, 8.0)}.items():
        rows += [
            row(f"A/all/e{epoch}", "A", "all", "full", "b1", 50 + ga, epoch=epoch, size=10000),
            row(f"B/all/e{epoch}", "B", "all", "full", "b1", 50 + gb, epoch=epoch, size=10000),
        ]
    curves = epoch_curves(compute_gains(table(rows))).set_index("epoch")
    assert set(curves["study"]) == {"all-cosine"}
    assert curves.loc[1, "mean_gain"] == pytest.approx(2.0)
    assert curves.loc[1, "std_gain"] == pytest.approx(1.0)
    assert curves.loc[2, "mean_gain"] == pytest.approx(6.0)
    assert curves.loc[2, "n_models"] == 2


def test_epoch_curves_of_runs_that_kept_several_epochs():
    rows = [row("A", "A", "pretrain", "base", "b1", 50.0)]
    for epoch, gain in {2: 1.0, 4: 5.0}.items():
        rows.append(
            {
                **row(
                    f"run-a/epoch-{epoch:02d}",
                    "A",
                    "demo_facts",
                    "lora",
                    "b1",
                    50 + gain,
                    epoch=epoch,
                    size=200,
                ),
                "run_id": "run-a",
            }
        )
    rows.append(
        {
            **row("run-b/epoch-04", "A", "demo_strings", "lora", "b1", 40.0, epoch=4, size=200),
            "run_id": "run-b",
        }
    )  # one kept epoch: no curve of its own
    curves = epoch_curves(compute_gains(table(rows))).set_index("epoch")
    assert set(curves["study"]) == {"kept-checkpoints"}
    assert curves.loc[2, "mean_gain"] == pytest.approx(1.0)
    assert curves.loc[4, "mean_gain"] == pytest.approx(5.0)
    assert curves.loc[4, "n_models"] == 1


def test_cross_lingual_correlation():
    mmlu = [1.0, 2.0, 3.0, 5.0]
    rows = [row("A", "A", "pretrain", "base", b, 30.0) for b in ("mmlu", "cmmlu", "jmmlu")]
    for i, g in enumerate(mmlu):
        rows += [
            row(f"A/{i}", "A", f"d{i}", "full", "mmlu", 30 + g),
            row(f"A/{i}", "A", f"d{i}", "full", "cmmlu", 30 + 2 * g + 1),
            row(f"A/{i}", "A", f"d{i}", "full", "jmmlu", 30 - g * g),
        ]
    result = cross_lingual(compute_gains(table(rows))).set_index(["base_model_name", "target_task"])
    assert result.loc[("all", "cmmlu-0shot"), "pearson"] == pytest.approx(1.0)
    assert result.loc[("all", "jmmlu-0shot"), "spearman"] == pytest.approx(-1.0)
    assert result.loc[("all", "jmmlu-0shot"), "pearson"] == pytest.approx(
        stats.pearsonr(mmlu, [-g * g for g in mmlu])[0]
    )


def test_cross_lingual_with_too_few_models_is_nan():
    rows = [row("A", "A", "pretrain", "base", b, 30.0) for b in ("mmlu", "cmmlu")]
    rows += [row("A/0", "A", "d0", "full", "mmlu", 31.0), row("A/0", "A", "d0", "full", "cmmlu", 32.0)]
    result = cross_lingual(compute_gains(table(rows)))
    assert math.isnan(result["pearson"].iloc[0]) and result["n_models"].iloc[0] == 1


def _predictor_world(noise: float = 0.0):
    """Gain = model offset - 3 * log perplexity (+ noise): perplexity predicts perfectly within a model."""
    rng = np.random.default_rng(1)
    gains_in, ppl = {}, []
    for offset, base in zip((0.0, 5.0, -2.0), "ABC", strict=False):
        for d in range(5):
            log_ppl = rng.uniform(0.5, 3.0)
            ppl.append(
                {
                    "base_model_name": base,
                    "dataset": f"d{d}",
                    "scope": "response",
                    "perplexity": math.exp(log_ppl),
                    "n_tokens": 100 * (d + 1),
                    "n_samples": 10,
                }
            )
            for t in ("b1", "b2"):
                gains_in[(base, f"d{d}", t)] = offset - 3 * log_ppl + noise * rng.normal()
    gains = compute_gains(synergy_scores(gains_in))
    synergy = synergy_table(gains, resolve_main_condition(gains))
    return predictor_values(synergy, perplexity_features(pd.DataFrame(ppl)))


def test_predictor_correlations_and_summary():
    values = _predictor_world()
    correlations = predictor_correlations(values, min_datasets=4)
    ppl = correlations[correlations["predictor"] == "log_perplexity"]
    assert len(ppl) == 6 and np.allclose(ppl["spearman"], -1.0)
    summary = predictor_summary(correlations).set_index(["predictor", "task"])
    assert summary.loc[("log_perplexity", "all"), "mean_spearman"] == pytest.approx(-1.0)
    assert summary.loc[("log_perplexity", "all"), "sign_consistency"] == pytest.approx(1.0)
    assert summary.loc[("log_perplexity", "all"), "n_models"] == 3
    # mean_tokens = n_tokens / n_samples = 10 * (d + 1)
    assert values.set_index(["base_model_name", "dataset"]).loc[("A", "d2"), "mean_tokens"].iloc[0] == 30.0


def test_lodo_error_beats_mean_baseline_when_perplexity_predicts():
    errors = prediction_errors(lodo_predictions(_predictor_world(noise=0.1))).set_index("task")
    assert errors.loc["all", "n"] == 30  # 5 datasets x 3 models x 2 tasks
    assert errors.loc["all", "model_mae"] < 0.3
    assert errors.loc["all", "model_mae"] < errors.loc["all", "baseline_mae"] / 3


def test_layer_correlation_per_depth_bin():
    gains = pd.Series({"m1": 1.0, "m2": 2.0, "m3": 3.0, "m4": 4.0})
    rows = []
    for model, gain in gains.items():
        for layer in range(4):
            depth = layer / 3
            # bottom half: change follows the gain; top half: constant change (no correlation)
            relative = 0.01 * gain if layer < 2 else 0.05 + 0.001 * (model == "m1")
            for module in ("q_proj", "mlp"):
                rows.append(
                    {
                        "model_id": model,
                        "layer": layer,
                        "depth": depth,
                        "module": module,
                        "frobenius": relative * 10,
                        "relative": relative,
                        "n_params": 100,
                    }
                )
    result = layer_gain_correlation(pd.DataFrame(rows), gains, bins=2, min_models=3).set_index("depth_bin")
    assert result.loc[0.25, "pearson"] == pytest.approx(1.0)
    assert result.loc[0.75, "pearson"] < 0
    assert result.loc[0.25, "mean_relative"] == pytest.approx(0.025)
    assert result.loc[0.25, "n_models"] == 4
