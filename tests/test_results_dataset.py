"""The results dataset folder: layout of docs/ARCHITECTURE.md, loadable with datasets by config name."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from release.config import ReleaseConfig
from release.results_dataset import build_results_dataset


@pytest.fixture(scope="module")
def dataset_dir(release_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rd") / "root"
    shutil.copytree(release_root, root)
    (root / "report" / "tables").mkdir(parents=True)
    pd.DataFrame({"task": ["demo_facts-0shot"], "gain": [1.5]}).to_parquet(
        root / "report/tables/gains.parquet"
    )
    pd.DataFrame({"component": [1], "explained_variance_ratio": [0.7]}).to_parquet(
        root / "report/tables/pca_explained.parquet"
    )
    # An analysis the data cannot support writes an empty table (the demo's cross-lingual section).
    pd.DataFrame(
        {"language": pd.Series([], dtype="string"), "gain": pd.Series([], dtype="float64")}
    ).to_parquet(root / "report/tables/cross_lingual.parquet")
    (root / "report" / "report.md").write_text("# report\n")
    pd.DataFrame({"base_model_name": ["tiny-llama"], "perplexity": [3.0]}).to_parquet(
        root / "perplexity.parquet"
    )
    (root / "quality.json").write_text('{"findings": []}')
    return build_results_dataset(
        root, tmp_path_factory.mktemp("out") / "results", ReleaseConfig(namespace="ns")
    )


def test_layout(dataset_dir: Path) -> None:
    for path in (
        "data/leaderboard.parquet",
        "data/scores.parquet",
        "data/runs.parquet",
        "data/gains.parquet",
        "data/perplexity.parquet",
        "analysis/gains.parquet",
        "analysis/pca_explained.parquet",
        "quality.json",
        "README.md",
        "report/report.md",
    ):
        assert (dataset_dir / path).is_file(), path
    assert not (dataset_dir / "data/layers.parquet").exists()  # no layers.parquet in the root
    # The published gains are common.gains over the published scores (the Space and cards read them).
    gains = pd.read_parquet(dataset_dir / "data/gains.parquet")
    scores = pd.read_parquet(dataset_dir / "data/scores.parquet")
    assert len(gains) == int((scores["method"] != "base").sum()) and set(gains["model_id"]) == set(
        scores.loc[scores["method"] != "base", "model_id"]
    )
    assert (gains["gain"] == gains["value"] - gains["base_value"]).all()


def test_leaderboard_columns_and_locations(dataset_dir: Path) -> None:
    board = pd.read_parquet(dataset_dir / "data/leaderboard.parquet")
    assert len(board) == 5  # base + 2 runs x 2 epochs
    assert {"language", "repo_id", "revision", "demo_arithmetic-0shot"} <= set(board.columns)
    tuned = board[board["method"] == "full"].sort_values("epoch")
    assert list(tuned["repo_id"]) == ["ns/tiny-llama-demo_arithmetic-full-64-cosine"] * 2
    assert list(tuned["revision"]) == ["epoch-01", "epoch-02"]
    base = board[board["method"] == "base"].iloc[0]
    assert (base["repo_id"], base["revision"], base["language"]) == ("ns/tiny-llama", "main", "demo")
    runs = pd.read_parquet(dataset_dir / "data/runs.parquet")
    assert len(runs) == 5 and runs["data_hash"].notna().sum() == 4 and runs["lora_r"].notna().sum() == 2


def test_load_dataset_by_config(dataset_dir: Path) -> None:
    import datasets

    card = yaml.safe_load((dataset_dir / "README.md").read_text().split("---\n")[1])
    names = {c["config_name"] for c in card["configs"]}
    assert {"leaderboard", "scores", "runs", "gains", "perplexity", "analysis_pca_explained"} <= names
    board = datasets.load_dataset(str(dataset_dir), "leaderboard", split="train")
    assert board.num_rows == 5
    pca = datasets.load_dataset(str(dataset_dir), "analysis_pca_explained", split="train")
    assert pca[0]["explained_variance_ratio"] == 0.7


def test_every_config_loads_and_the_card_has_hub_metadata(dataset_dir: Path) -> None:
    import datasets

    text = (dataset_dir / "README.md").read_text()
    card = yaml.safe_load(text.split("---\n")[1])
    assert card["task_categories"] == ["text-generation"] and card["size_categories"] == ["n<1K"]
    names = [c["config_name"] for c in card["configs"]]
    assert "analysis_cross_lingual" not in names and "`analysis_cross_lingual`" in text  # named, not a config
    for name in names:
        assert datasets.load_dataset(str(dataset_dir), name, split="train").num_rows > 0, name
