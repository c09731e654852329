"""Build the published results dataset as a local folder (docs/ARCHITECTURE.md, "Published results
dataset"); ``release.publish`` uploads that folder, and the Space can read it directly.

    data/leaderboard.parquet   common.schema.to_wide(scores) + language, repo_id, revision
    data/scores.parquet        the long scores table
    data/runs.parquet          one row per released model: identity + training config + data hash
    data/gains.parquet         report/tables/gains.parquet, when the analysis wrote it
    data/perplexity.parquet    <root>/perplexity.parquet, when present
    data/layers.parquet        <root>/layers.parquet, when present
    analysis/<name>.parquet    every report/tables/<name>.parquet
    report/                    report.md, report.html, figures/ (when include.report)
    quality.json               importer findings, when present
    README.md                  dataset card with ``configs:`` (load_dataset(repo, "leaderboard"))
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from common.catalog import BASE_MODELS_BY_NAME, language_of
from common.io import write_parquet, write_text
from common.layout import OutputRoot
from common.schema import IDENTITY_COLUMNS, read_scores, to_wide
from release.cards import dataset_card
from release.config import ReleaseConfig
from release.inputs import ReleaseInputError, gains_or_empty, load_inputs

Locations = Mapping[str, tuple[str, str]]  # model_id -> (repo_id, revision)
OPTIONAL_TABLES = {"perplexity": "perplexity", "layers": "layers"}  # name -> OutputRoot attribute
REPORT_FILES = ("report.md", "report.html")


def _with_locations(frame: pd.DataFrame, locations: Locations) -> pd.DataFrame:
    frame = frame.copy()
    frame.insert(
        len(IDENTITY_COLUMNS), "language", frame["base_model_name"].map(language_of).astype("string")
    )
    frame.insert(
        len(IDENTITY_COLUMNS) + 1,
        "repo_id",
        pd.array([locations.get(m, (None, None))[0] for m in frame["model_id"]], dtype="string"),
    )
    frame.insert(
        len(IDENTITY_COLUMNS) + 2,
        "revision",
        pd.array([locations.get(m, (None, None))[1] for m in frame["model_id"]], dtype="string"),
    )
    return frame


def leaderboard_table(scores: pd.DataFrame, locations: Locations, config: ReleaseConfig) -> pd.DataFrame:
    """The wide scores with where each model lives and its base model's license and size (the Space's
    columns and filters)."""
    frame = _with_locations(to_wide(scores), locations)
    bases = frame[["base_model_name", "base_model"]].fillna("").itertuples(index=False)
    licenses = [config.license.for_base(name, hf_id) for name, hf_id in bases]
    sizes = [
        getattr(BASE_MODELS_BY_NAME.get(name), "parameters_b", None) for name in frame["base_model_name"]
    ]
    frame.insert(len(IDENTITY_COLUMNS) + 3, "license", pd.array(licenses, dtype="string"))
    frame.insert(len(IDENTITY_COLUMNS) + 4, "parameters", pd.array(sizes, dtype="Float64"))
    return frame


def _run_row(checkpoint: Any, group: Any) -> dict[str, Any]:
    record, job = checkpoint.record, checkpoint.record.get("job", {})
    lora = job.get("lora") or {}
    return {
        "model_id": checkpoint.model_id,
        "run_id": record.get("run_id") or group.run_id,
        **group.identity,
        "epoch": checkpoint.epoch,
        **{
            k: job.get(k)
            for k in (
                "epochs",
                "learning_rate",
                "batch_size",
                "seed",
                "max_length",
                "warmup_ratio",
                "weight_decay",
                "template",
                "loss_on",
                "grid",
            )
        },
        "lora_r": lora.get("r"),
        "lora_alpha": lora.get("alpha"),
        "lora_dropout": lora.get("dropout"),
        "lora_target_modules": ",".join(lora.get("target_modules", [])) or None,
        "data_hash": record.get("data_hash"),
        "num_samples": record.get("num_samples"),
        "train_loss": (record.get("metrics") or {}).get("train_loss"),
        "wall_time_s": record.get("wall_time_s"),
    }


def runs_table(groups: list[Any], scores: pd.DataFrame, locations: Locations) -> pd.DataFrame:
    """One row per released model (fine-tuned checkpoints from run.json, base models from scores)."""
    rows = [_run_row(c, g) for g in groups for c in g.checkpoints]
    known = {r["model_id"] for r in rows}
    base_rows = scores[(scores["method"] == "base") & ~scores["model_id"].isin(known)]
    rows += base_rows[list(IDENTITY_COLUMNS)].drop_duplicates("model_id").to_dict("records")
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=list(IDENTITY_COLUMNS))
    frame["data_size"] = frame["data_size"].astype("Int64")
    frame["epoch"] = frame["epoch"].astype("Int64")
    frame = frame.sort_values("model_id", kind="stable").reset_index(drop=True)
    columns = list(IDENTITY_COLUMNS) + [c for c in frame.columns if c not in IDENTITY_COLUMNS]
    return _with_locations(frame[columns], locations)


def _add_config(
    configs: list[tuple[str, str]], counts: dict[str, int], empty: list[str], name: str, path: str, rows: int
) -> None:
    """A loadable ``configs:`` entry for a table with rows; an empty one is only named in the card."""
    counts[name] = rows
    if rows:
        configs.append((name, path))
    else:
        empty.append(name)


def _copy_report(report_dir: Path, out_dir: Path) -> list[str]:
    copied = []
    for name in REPORT_FILES:
        if (report_dir / name).exists():
            shutil.copy2(report_dir / name, out_dir / "report" / name)
            copied.append(f"report/{name}")
    for figure in sorted((report_dir / "figures").glob("*")) if (report_dir / "figures").is_dir() else []:
        if figure.is_file():
            (out_dir / "report" / "figures").mkdir(parents=True, exist_ok=True)
            shutil.copy2(figure, out_dir / "report" / "figures" / figure.name)
            copied.append(f"report/figures/{figure.name}")
    return copied


def build_results_dataset(
    root_or_inputs: str | Path | Any,
    out_dir: str | Path,
    config: ReleaseConfig | None = None,
    locations: Locations | None = None,
) -> Path:
    """Write the results dataset folder for an output root (or loaded ``ReleaseInputs``) into ``out_dir``.

    ``locations`` (model_id -> (repo_id, revision)) defaults to the repos the release config names; when
    the root cannot be released as a whole, models without a repo get null ``repo_id``/``revision``."""

    config = config or ReleaseConfig()
    inputs = root_or_inputs
    if isinstance(root_or_inputs, (str, Path)):
        root = Path(root_or_inputs)
        try:
            inputs = load_inputs(root, config)
        except ReleaseInputError:
            inputs = None
        scores = read_scores(OutputRoot(root).scores)
    else:
        root, scores = inputs.root, inputs.scores
    groups = inputs.groups if inputs is not None else []
    locations = locations if locations is not None else (inputs.locations() if inputs is not None else {})
    out_dir = Path(out_dir)
    shutil.rmtree(out_dir, ignore_errors=True)  # a stale file from an older build must not be published
    (out_dir / "data").mkdir(parents=True)
    tables: dict[str, pd.DataFrame] = {
        "leaderboard": leaderboard_table(scores, locations, config),
        "scores": scores,
        "runs": runs_table(groups, scores, locations),
    }
    layout = OutputRoot(root)
    tables_dir = layout.report_tables_dir
    gains = inputs.gains if inputs is not None else gains_or_empty(scores)
    if len(gains):
        tables["gains"] = gains
    for name, attribute in OPTIONAL_TABLES.items():
        if (path := getattr(layout, attribute)).exists():
            tables[name] = pd.read_parquet(path)
    configs, counts, empty = [], {}, []
    for name, frame in tables.items():
        write_parquet(out_dir / "data" / f"{name}.parquet", frame)
        _add_config(configs, counts, empty, name, f"data/{name}.parquet", len(frame))
    for path in sorted(tables_dir.glob("*.parquet")) if tables_dir.is_dir() else []:
        (out_dir / "analysis").mkdir(exist_ok=True)
        shutil.copy2(path, out_dir / "analysis" / path.name)
        rows = pq.ParquetFile(path).metadata.num_rows
        _add_config(configs, counts, empty, f"analysis_{path.stem}", f"analysis/{path.name}", rows)
    extra = []
    if layout.quality.exists():
        shutil.copy2(layout.quality, out_dir / "quality.json")
        extra.append("quality.json")
    if config.include.report and layout.report_dir.is_dir():
        (out_dir / "report").mkdir(exist_ok=True)
        extra += _copy_report(layout.report_dir, out_dir)
    write_text(
        out_dir / "README.md",
        dataset_card(configs=configs, config=config, counts=counts, extra_files=extra, empty=empty),
    )
    return out_dir
