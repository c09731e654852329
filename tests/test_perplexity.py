"""Perplexity of training data: the batched, padded implementation against a one-sample reference."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from common.cli import run_command
from common.template import render_prompt, render_sample
from evaluation import cli_perplexity
from evaluation.perplexity import (
    PerplexityError,
    compute_perplexity,
    load_model,
    reference_perplexity,
)
from training.demo_data import demo_examples
from training.grid import filter_jobs, load_grid
from training.manifest import record_jobs


def _prepared(tmp_path: Path, name: str, n: int, long_every: int = 3) -> Path:
    """A prepared-set file; every ``long_every``-th response is lengthened so batches need padding."""
    rows = []
    for i, example in enumerate(demo_examples(name, "train", n)):
        response = example["response"] + (" and so on" * (i % 7) if i % long_every == 0 else "")
        rows.append(
            {
                "id": f"{name}-{i}",
                "dataset": name,
                "source": name,
                "instruction": example["instruction"],
                "response": response,
                "prompt": render_prompt(example["instruction"]),
                "text": render_sample(example["instruction"], response),
            }
        )
    path = tmp_path / f"{name}__{n}__abc123.parquet"
    pd.DataFrame(rows).to_parquet(path)
    return path


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_qwen2"])
def test_batched_equals_per_sample_reference(fixture, request, tmp_path):
    model_path = request.getfixturevalue(fixture)
    paths = [_prepared(tmp_path, "demo_arithmetic", 23), _prepared(tmp_path, "demo_facts", 17)]
    samples, aggregate = compute_perplexity(model_path, paths, batch_size=5, device="cpu", progress=False)
    model, tokenizer, _ = load_model(model_path, "cpu")
    frames = {p: pd.read_parquet(p) for p in paths}
    assert len(samples) == 2 * (23 + 17)
    checked = 0
    for frame in frames.values():
        for row in frame.itertuples():
            expected = reference_perplexity(model, tokenizer, row.prompt, row.text)
            for scope, (total, tokens) in expected.items():
                got = samples[(samples["sample_id"] == row.id) & (samples["scope"] == scope)].iloc[0]
                assert got["n_tokens"] == tokens
                assert got["mean_nll"] == pytest.approx(total / tokens, abs=1e-4)
                checked += 1
    assert checked == len(samples)
    # Response tokens are a strict subset of the predicted tokens of the whole sample.
    wide = samples.pivot_table(index="sample_id", columns="scope", values="n_tokens")
    assert ((wide["response"] > 0) & (wide["response"] < wide["full"])).all()
    # Aggregates: token-weighted mean NLL, perplexity = exp(mean NLL).
    for (dataset, scope), group in samples.groupby(["dataset", "scope"]):
        agg = aggregate[(aggregate["dataset"] == dataset) & (aggregate["scope"] == scope)].iloc[0]
        weighted = (group["mean_nll"] * group["n_tokens"]).sum() / group["n_tokens"].sum()
        assert agg["n_tokens"] == group["n_tokens"].sum() and agg["n_samples"] == len(group)
        assert agg["mean_nll"] == pytest.approx(weighted, rel=1e-12)
        assert agg["perplexity"] == pytest.approx(math.exp(weighted), rel=1e-12)
    assert set(aggregate["data_hash"]) == {"abc123"} and set(aggregate["data_size"]) == {23, 17}


def test_batch_size_does_not_change_results(tiny_llama, tmp_path):
    path = _prepared(tmp_path, "demo_strings", 19, long_every=2)
    one, _ = compute_perplexity(tiny_llama, [path], batch_size=1, device="cpu", progress=False)
    many, _ = compute_perplexity(tiny_llama, [path], batch_size=8, device="cpu", progress=False)
    key = ["sample_id", "scope"]
    merged = one.merge(many, on=key, suffixes=("_1", "_8"))
    assert len(merged) == 38
    assert (merged["n_tokens_1"] == merged["n_tokens_8"]).all()
    assert (merged["mean_nll_1"] - merged["mean_nll_8"]).abs().max() < 1e-4


def test_truncation_and_bad_input(tiny_llama, tmp_path):
    path = _prepared(tmp_path, "demo_facts", 4)
    samples, _ = compute_perplexity(tiny_llama, [path], max_length=8, device="cpu", progress=False)
    assert samples["truncated"].all() and (samples.loc[samples["scope"] == "full", "n_tokens"] == 7).all()
    broken = tmp_path / "broken.parquet"
    pd.DataFrame({"id": ["a"], "text": ["x"]}).to_parquet(broken)
    with pytest.raises(PerplexityError, match="broken.parquet lacks columns"):
        compute_perplexity(tiny_llama, [broken], device="cpu", progress=False)
    with pytest.raises(PerplexityError, match="batch_size"):
        compute_perplexity(tiny_llama, [path], batch_size=0, device="cpu")


def _cli(root: Path, only: str) -> int:
    return run_command(
        "python -m evaluation perplexity",
        cli_perplexity,
        ["--grid", "demo", "--root", str(root), "--only", only, "--batch-size", "16"],
    )


def test_cli_on_demo_grid_is_resumable(tmp_path, capsys):
    root = tmp_path / "demo"
    only = "base_model_name=tiny-llama,dataset=demo_arithmetic,dataset=demo_facts"
    assert _cli(root, only) == 2  # training has recorded no jobs here yet
    assert "records no job of grid 'demo'" in capsys.readouterr().err
    # What `python -m training prepare/run --grid demo` records: the jobs and their built base models.
    record_jobs(filter_jobs(load_grid("demo"), "base_model_name=tiny-llama"), root)
    assert _cli(root, only) == 0
    table = pd.read_parquet(root / "perplexity.parquet")
    samples = pd.read_parquet(root / "perplexity_samples.parquet")
    assert sorted(table["dataset"]) == ["demo_arithmetic"] * 2 + ["demo_facts"] * 2
    assert set(table["scope"]) == {"response", "full"} and set(table["base_model"]) == {"local/tiny-llama"}
    assert (table["n_samples"] == 200).all() and len(samples) == 800
    assert table["perplexity"].between(1, 10_000).all()
    assert "2 (base model, dataset) pair(s) computed" in capsys.readouterr().out
    before = (root / "perplexity.parquet").stat().st_mtime_ns
    assert _cli(root, only) == 0
    assert "0 (base model, dataset) pair(s) computed, 2 already done" in capsys.readouterr().out
    assert (root / "perplexity.parquet").stat().st_mtime_ns == before
