"""Gain over the base model: one implementation (common.gains), published by the release and read by the
Space and the cards; the leaderboard column encode/decode pair."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from space_support import write_results_folder

from common.gains import NoBaseRowsError, compute_gains, gains_of_leaderboard
from common.schema import WideColumn, conform, parse_wide_column, to_wide, wide_column
from space.data import read_results_folder


def _scores() -> pd.DataFrame:
    rows = []
    for model_id, method, dataset, values in [
        ("base", "base", "pretrain", {("gsm8k", 4, "exact_match"): 40.0, ("mtbench", 0, "total"): 5.0}),
        ("run/epoch-01", "full", "lima", {("gsm8k", 4, "exact_match"): 42.5, ("mtbench", 0, "total"): 6.5}),
        ("other/epoch-01", "lora", "lima", {("gsm8k", 4, "exact_match"): 39.0}),
    ]:
        for (benchmark, shots, metric), value in values.items():
            rows.append(
                {
                    "model_id": model_id,
                    "base_model": "org/base",
                    "base_model_name": "base",
                    "dataset": dataset,
                    "method": method,
                    "data_size": 0 if method == "base" else 1000,
                    "epoch": 0 if method == "base" else 1,
                    "lr_schedule": "none" if method == "base" else "cosine",
                    "benchmark": benchmark,
                    "shots": shots,
                    "metric": metric,
                    "value": value,
                    "source": "lm-eval",
                    "harness_version": "x",
                    "evaluated_at": "2025-01-01",
                    "flags": "low-n" if model_id == "base" and benchmark == "mtbench" else "",
                }
            )
    return conform(pd.DataFrame(rows))


@pytest.mark.parametrize(
    ("bench", "shots", "metric", "name", "decoded"),
    [
        ("gsm8k", 4, "exact_match", "gsm8k-4shot", WideColumn("gsm8k", 4, None)),
        ("longbench_v2", 0, "acc", "longbench_v2-0shot", WideColumn("longbench_v2", 0, None)),
        ("mtbench", 0, "writing", "mtbench-writing", WideColumn("mtbench", None, "writing")),
        (
            "alpaca_eval_v2",
            0,
            "win_rate",
            "alpaca_eval_v2-win_rate",
            WideColumn("alpaca_eval_v2", None, "win_rate"),
        ),
    ],
)
def test_leaderboard_column_encodes_and_decodes(bench, shots, metric, name, decoded) -> None:
    assert wide_column(bench, shots, metric) == name
    assert parse_wide_column(name) == decoded


def test_long_gains_match_on_base_model_benchmark_shots_metric() -> None:
    gains = compute_gains(_scores()).set_index(["model_id", "task"])
    assert gains.loc[("run/epoch-01", "gsm8k-4shot"), "gain"] == pytest.approx(2.5)
    assert gains.loc[("other/epoch-01", "gsm8k-4shot"), "gain"] == pytest.approx(-1.0)
    mtbench = gains.loc[("run/epoch-01", "mtbench-total")]
    assert mtbench["gain"] == pytest.approx(1.5) and mtbench["flagged"]  # the base score is flagged
    assert not gains.loc[("run/epoch-01", "gsm8k-4shot"), "flagged"]
    with pytest.raises(NoBaseRowsError):
        compute_gains(_scores().query("method != 'base'"))
    # The same gains from the wide leaderboard, its columns decoded.
    board = to_wide(_scores())
    wide = gains_of_leaderboard(board, ["gsm8k-4shot", "mtbench-total"]).set_index(["model_id", "task"])
    pd.testing.assert_series_equal(wide["gain"].sort_index(), gains["gain"].sort_index())


def test_the_space_reads_the_published_gains(tmp_path: Path) -> None:
    folder = write_results_folder(_scores(), {"findings": []}, tmp_path)
    results = read_results_folder(folder, source="test")
    row = results.leaderboard.index[results.leaderboard["model_id"] == "run/epoch-01"][0]
    assert results.gains.loc[row, "gsm8k-4shot"] == pytest.approx(2.5)
    base_row = results.leaderboard.index[results.leaderboard["method"] == "base"][0]
    assert results.gains.loc[base_row, "gsm8k-4shot"] == 0.0
    other = results.leaderboard.index[results.leaderboard["model_id"] == "other/epoch-01"][0]
    assert pd.isna(results.gains.loc[other, "mtbench-total"])  # no score, no gain
    # What the Space shows is the published table, not a recomputation.
    published = pd.read_parquet(folder / "data/gains.parquet")
    published.loc[published["model_id"] == "run/epoch-01", "gain"] = 99.0
    published.to_parquet(folder / "data/gains.parquet", index=False)
    again = read_results_folder(folder, source="test")
    assert again.gains.loc[row, "gsm8k-4shot"] == 99.0
