"""What should I train on? (``common/recommend.py``, ``python -m analysis recommend``): checked against
the released table of the study with one base model's measured gains held out, on hand-made tables
where the answer is known, and through the CLI with bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.__main__ import main as analysis_main
from analysis.gains import compute_gains
from analysis.synergy import resolve_main_condition, synergy_table
from common.recommend import (
    RecommendError,
    base_scores_of,
    model_profiles,
    new_profile,
    parse_values,
    recommend,
    resolve_target,
    similarity,
)
from common.schema import to_wide
from evaluation.importer import import_released
from space import recommend as tab
from space.data import Results
from tests.analysis_tables import synergy_scores

# Spearman's one-sided 5% critical value for n = 10 (the study's ten SFT datasets): a random ranking
# exceeds it one time in twenty.
RANDOM_RANKING_CRITICAL = 0.564
MATH = ("gsm8k-0shot", "gsm8k-4shot", "math-0shot")  # the tasks of the family "math" in the table


@pytest.fixture(scope="module")
def study(released_table: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(main-condition synergy table, base-model profiles) of the released table."""
    scores = import_released(released_table).scores
    gains = compute_gains(scores)
    synergy = synergy_table(gains, resolve_main_condition(gains))
    return synergy, model_profiles(base_scores_of(to_wide(scores)))


def held_out(study, model: str, method: str = "full") -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Recommend for ``model`` as if it were new: its gains are removed from the results and only its
    base scores (known before any fine-tuning) describe it. (recommendation by dataset, its measured
    family-math gain, the mean-gain baseline), each indexed by dataset, computed here with pandas."""
    synergy, profiles = study
    others = synergy[synergy["base_model_name"] != model]
    result = recommend(
        others, profiles.drop(index=model), "held-out", "family:math", method, profile=profiles.loc[model]
    )
    assert not result.known and result.target.tasks == MATH
    math_rows = synergy[(synergy["method"] == method) & synergy["task"].isin(MATH)]
    per_model = math_rows.groupby(["base_model_name", "dataset"])["gain"].mean()
    measured = per_model.xs(model)
    baseline = per_model.drop(index=model, level="base_model_name").groupby("dataset").mean()
    return result.ranking.set_index("dataset"), measured, baseline.reindex(measured.index)


def test_held_out_model_ranking_agrees_with_its_measured_gains(study):
    """Meta-Llama-3-8B held out, target the math family (GSM8K, MATH). The bar is the mean-gain baseline
    (each dataset's mean gain over the other ten models: what the study's dataset-effect table tells a
    reader without the recommender), and a random ranking's 5% critical value."""
    ranking, measured, baseline = held_out(study, "Meta-Llama-3-8B")
    predicted = ranking["predicted"].reindex(measured.index)
    rho = stats.spearmanr(predicted, measured).statistic
    base_rho = stats.spearmanr(baseline, measured).statistic
    assert len(measured) == 10
    assert rho > RANDOM_RANKING_CRITICAL
    assert rho > base_rho, (rho, base_rho)
    assert (predicted - measured).abs().mean() < (baseline - measured).abs().mean()
    assert measured.idxmax() in ranking.index[:3]  # the measured best is among the three recommended first


def test_every_held_out_model_beats_the_mean_gain_baseline_on_average(study):
    """Each of the 11 base models held out in turn (full and LoRA): on average over them the ranking
    agrees better with the measured gains than the mean-gain baseline, the error is lower, and the 90%
    intervals cover close to 90% of the measured gains (they come from a leave-one-model-out within the
    ten remaining models, so a little under is expected; 75% would mean they are far too narrow)."""
    synergy, profiles = study
    for method in ("full", "lora"):
        rows = []
        for model in profiles.index:
            ranking, measured, baseline = held_out(study, model, method)
            predicted = ranking["predicted"].reindex(measured.index)
            inside = measured.between(
                ranking["low"].reindex(measured.index), ranking["high"].reindex(measured.index)
            )
            rows.append(
                {
                    "rho": stats.spearmanr(predicted, measured).statistic,
                    "base_rho": stats.spearmanr(baseline, measured).statistic,
                    "error": (predicted - measured).abs().mean(),
                    "base_error": (baseline - measured).abs().mean(),
                    "coverage": inside.mean(),
                }
            )
        table = pd.DataFrame(rows)
        assert len(table) == 11
        assert table["rho"].mean() > table["base_rho"].mean(), (method, table.mean())
        assert table["error"].mean() < table["base_error"].mean(), (method, table.mean())
        assert 0.75 <= table["coverage"].mean() <= 1.0, (method, table.mean())


def test_reliability_is_the_leave_one_model_out_error_against_the_baseline(study):
    synergy, profiles = study
    result = recommend(synergy, profiles, "Meta-Llama-3-8B", "family:math")
    reliability = result.reliability
    assert result.known and reliability.n_models == 11
    assert reliability.mae < reliability.baseline_mae  # what the held-out tests above find
    assert "beats the mean-gain baseline" in result.summary()
    # Its own measured gains are evidence, not input: they are the table's values, column by column.
    own = synergy[(synergy["base_model_name"] == "Meta-Llama-3-8B") & (synergy["method"] == "full")]
    measured = own[own["task"].isin(MATH)].groupby("dataset")["gain"].mean()
    shown = result.evidence.set_index("dataset")["Meta-Llama-3-8B"]
    assert np.allclose(shown.reindex(measured.index), measured)
    assert np.allclose(result.ranking.set_index("dataset")["measured"].reindex(measured.index), measured)
    # The prediction leaves them out: the same as for the model held out entirely.
    ranking, _, _ = held_out(study, "Meta-Llama-3-8B")
    assert np.allclose(
        result.ranking.set_index("dataset")["predicted"],
        ranking["predicted"].reindex(result.ranking["dataset"]),
    )
    # The similar models shown carry the largest weights, and they are evidence columns too.
    assert result.similar["weight"].is_monotonic_decreasing and len(result.similar) == 3
    assert set(result.similar["base_model_name"]) <= set(result.evidence.columns)


def test_a_target_that_mixes_scales_is_normalised_and_says_so(study):
    synergy, profiles = study
    result = recommend(synergy, profiles, "Qwen2.5-7B", "chat")
    assert result.target.tasks == ("alpaca_eval_v2-win_rate", "mtbench-total") and result.target.normalised
    assert result.target.unit == "% of each score's range"
    # On the chat family the weighting does not beat the plain mean on this table: it is said, not hidden.
    if result.reliability.mae > result.reliability.baseline_mae:
        assert "does NOT beat" in result.summary() and result.notes


# --- hand-made tables -------------------------------------------------------------------------------


def _world_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two kinds of base model: low perplexity on ``a`` gains most from ``a``, the others from ``b``.
    Three models of the second kind, so the plain mean prefers ``b``. (synergy, perplexity)."""
    kinds = {"m1": "A", "m2": "B", "m3": "B", "m4": "B", "m5": "A"}
    gains = {"A": {"a": 10.0, "b": 2.0, "c": 0.0}, "B": {"a": 1.0, "b": 8.0, "c": 0.0}}
    perplexity = {"A": {"a": 2.0, "b": 9.0, "c": 5.0}, "B": {"a": 9.0, "b": 2.0, "c": 5.0}}
    synergy, ppl = [], []
    for i, (model, kind) in enumerate(kinds.items()):
        for dataset in "abc":
            synergy.append(("full", model, dataset, "gsm8k-0shot", gains[kind][dataset] + 0.1 * i))
            ppl.append((model, dataset, perplexity[kind][dataset] * (1 + 0.01 * i)))
    return (
        pd.DataFrame(synergy, columns=["method", "base_model_name", "dataset", "task", "gain"]),
        pd.DataFrame(ppl, columns=["base_model_name", "dataset", "perplexity"]),
    )


def _world() -> tuple[pd.DataFrame, pd.DataFrame]:
    synergy, perplexity = _world_tables()
    scores = pd.DataFrame(columns=["base_model_name", "task", "value"])
    return synergy, model_profiles(scores, perplexity)


def test_a_new_model_is_matched_by_its_perplexity_on_the_datasets():
    synergy, profiles = _world()
    like_a = new_profile({}, {"a": 2.1, "b": 8.5, "c": 5.0})
    result = recommend(synergy, profiles, "mine", "gsm8k", profile=like_a)
    assert result.ranking["dataset"].tolist()[0] == "a"  # the plain mean would say "b"
    assert result.ranking.set_index("dataset").loc["b", "mean_over_models"] > 5
    assert set(result.similar["base_model_name"][:2]) == {"m1", "m5"}
    assert result.reliability.mae < result.reliability.baseline_mae
    like_b = new_profile({}, {"a": 9.0, "b": 2.0})
    assert recommend(synergy, profiles, "mine", "gsm8k", profile=like_b).ranking["dataset"].iloc[0] == "b"


def test_similarity_weights():
    profiles = pd.DataFrame({"x": [0.0, 1.0, 5.0], "y": [0.0, 1.0, 5.0]}, index=["p", "q", "r"])
    weights = similarity(profiles, pd.Series({"x": 0.0, "y": 0.0}))
    assert weights["distance"]["p"] == 0 and weights["weight"].idxmax() == "p"
    assert math.isclose(weights["weight"].sum(), 1.0)
    assert weights["weight"]["q"] > weights["weight"]["r"]
    shared_nothing = similarity(profiles, pd.Series({"z": 1.0}))
    assert shared_nothing["distance"].isna().all() and np.allclose(shared_nothing["weight"], 1 / 3)


def test_targets_and_values():
    tasks = ["gsm8k-4shot", "gsm8k-0shot", "math-0shot", "mtbench-total", "mtbench-writing", "mbpp-0shot"]
    assert resolve_target("GSM8K-4shot", tasks).tasks == ("gsm8k-4shot",)
    assert resolve_target("gsm8k", tasks).tasks == ("gsm8k-0shot", "gsm8k-4shot")
    assert resolve_target("math", tasks).tasks == ("math-0shot",)  # the benchmark; the family is named
    assert resolve_target("family:math", tasks).tasks == ("gsm8k-0shot", "gsm8k-4shot", "math-0shot")
    assert resolve_target("mtbench", tasks).tasks == ("mtbench-total",)  # the judge's total, not categories
    assert resolve_target("mtbench", tasks).unit == "points on the 1-10 scale"
    with pytest.raises(RecommendError, match="unknown target 'gsm8"):
        resolve_target("gsm8", tasks)
    assert parse_values("lima=3.2, alpaca_cleaned: 4\nmath = 1e1") == {
        "lima": 3.2,
        "alpaca_cleaned": 4.0,
        "math": 10.0,
    }
    for bad in ("lima", "lima=x", "lima=nan", "=3"):
        with pytest.raises(RecommendError, match="name=number"):
            parse_values(bad)
    with pytest.raises(RecommendError, match="positive"):
        new_profile({}, {"lima": -1})


def test_a_new_models_profile_may_only_name_what_the_results_hold():
    synergy, profiles = _world()
    with pytest.raises(RecommendError, match=r"\['zzz'\].*use tasks and SFT datasets among: a, b, c"):
        recommend(synergy, profiles, "mine", "gsm8k", profile=new_profile({}, {"zzz": 3.0}))
    with pytest.raises(RecommendError, match="unknown base model 'mine'"):
        recommend(synergy, profiles, "mine", "gsm8k")
    with pytest.raises(RecommendError, match="no 'lora' results; methods with results: full"):
        recommend(synergy, profiles, "m1", "gsm8k", method="lora")


# --- the command line ------------------------------------------------------------------------------


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = analysis_main(["recommend", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_ranks_the_datasets_with_the_evidence(released_table, capsys):
    code, out, err = _cli(
        capsys, "--scores", str(released_table), "--model", "Meta-Llama-3-8B", "--target", "family:math"
    )
    assert code == 0, err
    assert "beats the mean-gain baseline" in out and "low (90%)" in out
    assert "Most similar base models" in out and "Evidence: measured gains" in out
    code, out, _ = _cli(
        capsys,
        *("--scores", str(released_table), "--model", "my-7b", "--target", "code", "--json"),
        *("--new-score", "mmlu-5shot=55", "--new-score", "gsm8k-4shot=40", "--method", "lora"),
    )
    answer = json.loads(out)
    assert code == 0 and len(answer["ranking"]) == 10
    assert answer["target"]["tasks"] == ["humaneval-0shot", "mbpp-0shot", "mbpp-4shot"]
    assert [r["rank"] for r in answer["ranking"]] == list(range(1, 11))
    assert all(r["low"] <= r["predicted"] <= r["high"] for r in answer["ranking"])
    assert answer["reliability"]["n_models"] == 11


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--model", "Llama-4", "--target", "math"), "unknown base model 'Llama-4'"),
        (("--model", "Qwen2.5-7B", "--target", "mathh"), "unknown target 'mathh' (did you mean 'math'?)"),
        (
            ("--model", "new", "--new-score", "mmlu-5shot=high", "--target", "math"),
            "cannot read 'mmlu-5shot=high'",
        ),
        (("--model", "new", "--new-perplexity", "lima=3", "--target", "math"), "hold no perplexity"),
        (("--model", "new", "--new-score", "nosuch=3", "--target", "math"), "['nosuch']"),
        (("--model", "Qwen2.5-7B", "--target", "math", "--method", "dora"), "no 'dora' results"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(released_table, capsys, argv, message):
    code, out, err = _cli(capsys, "--scores", str(released_table), *argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def test_cli_matches_a_new_model_by_its_perplexity(tmp_path, capsys):
    """The output root of a grid of ours: scores.parquet and the evaluation stage's perplexity.parquet."""
    synergy, perplexity = _world_tables()
    gains = {(r.base_model_name, r.dataset, "gsm8k"): r.gain for r in synergy.itertuples()}
    synergy_scores(gains).to_parquet(tmp_path / "scores.parquet")
    perplexity.assign(scope="response", data_size=1000, n_samples=10, n_tokens=500).to_parquet(
        tmp_path / "perplexity.parquet"
    )
    argv = ("--root", str(tmp_path), "--model", "mine", "--target", "gsm8k", "--json")
    code, out, err = _cli(capsys, *argv, "--new-perplexity", "a=2.1", "--new-perplexity", "b=8.5,c=5")
    answer = json.loads(out)
    assert code == 0, err
    assert [r["dataset"] for r in answer["ranking"]] == ["a", "b", "c"]  # the plain mean would say b first
    assert {r["base_model_name"] for r in answer["similar"][:2]} == {"m1", "m5"}


def test_cli_without_results_names_the_file(tmp_path, capsys):
    code, _, err = _cli(capsys, "--root", str(tmp_path), "--model", "x", "--target", "math")
    assert code == 2 and "scores.parquet does not exist" in err and err.count("\n") == 1


def test_the_space_answers_from_published_tables_only(released_table):
    """The tab's handler on a results dataset without the synergy table says which command publishes
    it; with it, a new model without a description is asked for one."""
    scores = import_released(released_table).scores
    bare = Results.from_leaderboard(to_wide(scores))
    assert tab.target_options(bare) == [] and tab.model_options(bare) == [tab.NEW_MODEL]
    with pytest.raises(RecommendError, match="no `analysis/synergy.parquet`.*python -m analysis report"):
        tab.answer(bare, "Qwen2.5-7B", "family:math", "full")
    gains = compute_gains(scores)
    published = Results.from_leaderboard(
        to_wide(scores), analysis={"synergy": synergy_table(gains, resolve_main_condition(gains))}
    )
    assert ("family · math", "family:math") in tab.target_options(published)
    with pytest.raises(RecommendError, match="describe the new base model"):
        tab.answer(published, tab.NEW_MODEL, "family:math", "full")
    result = tab.answer(published, tab.NEW_MODEL, "family:math", "lora", scores_text="mmlu-5shot=50")
    assert result.model == "new base model" and len(result.ranking) == 10
