"""``python -m analysis map``: the model map. Every kept checkpoint under ROOT/runs and each base model
they were trained from score one fixed set of texts; their centred log-likelihood vectors are projected to
2-D (PCA). Writes ROOT/model_loglik.parquet (model, text, log-likelihood) and ROOT/model_map.parquet (one
row per model: identity, x, y, mean log-likelihood); `python -m analysis report --model-map` draws it.

Models are found as the evaluation stage finds them (the same model ids as in scores.parquet). The texts:
by default the same number of texts from each prepared training set in ROOT/data (the main-condition
subset); --texts takes any fixed set instead (parquet or JSON lines with a ``text`` column, optionally
``dataset``). Resumable: models that already scored this text set are skipped.

Examples:
  python -m analysis map --root outputs/demo
  python -m analysis map --root outputs/paper --texts my_texts.jsonl --device cuda --batch-size 16
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from analysis.common import MissingInputError
from analysis.model_map import LOGLIK_COLUMNS, label, model_map, text_loglik, text_set, texts_hash
from analysis.predictors import load_training_texts
from common.config import setting
from common.io import replace_rows, write_parquet
from common.layout import OutputRoot, default_root
from evaluation.runner import discover_models


@dataclass(frozen=True)
class Options:
    root: Path = setting(default_root(), "output root of a grid")
    texts: Path | None = setting(
        None, "fixed text set (parquet or .jsonl with a 'text' column; default: ROOT/data)"
    )
    texts_per_dataset: int = setting(20, "texts taken from each training set or each 'dataset' of --texts")
    out: Path | None = setting(None, "map table (default: ROOT/model_map.parquet)")
    loglik: Path | None = setting(None, "log-likelihood table (default: ROOT/model_loglik.parquet)")
    only: str | None = setting(
        None, "filter models by job fields, KEY=GLOB[,KEY=GLOB] (e.g. base_model_name=tiny-llama)"
    )
    batch_size: int = setting(8, "texts per forward pass")
    device: str | None = setting(None, "torch device (default: cuda when available, else cpu)")
    redo: bool = setting(False, "score models again even if already scored")


def read_texts(path: Path) -> dict[str, list[str]]:
    """source -> texts of a user's text file (``dataset`` column, else one source named after the file)."""

    if not path.exists():
        raise MissingInputError(f"texts file {path} does not exist")
    frame = pd.read_json(path, lines=True) if path.suffix in {".jsonl", ".json"} else pd.read_parquet(path)
    if "text" not in frame.columns:
        raise MissingInputError(f"{path} has no 'text' column (columns: {list(frame.columns)})")
    sources = (
        frame["dataset"].astype(str) if "dataset" in frame.columns else pd.Series(path.stem, frame.index)
    )
    return {str(source): rows["text"].astype(str).tolist() for source, rows in frame.groupby(sources)}


def _texts(options: Options) -> pd.DataFrame:
    data_dir = OutputRoot(options.root).data_dir
    texts = read_texts(options.texts) if options.texts else load_training_texts(data_dir)
    return text_set(texts, options.texts_per_dataset)


def _scored(path: Path, texts_hash: str) -> set[str]:
    if not path.exists():
        return set()
    table = pd.read_parquet(path, columns=["model_id", "texts_hash"])
    return set(table.loc[table["texts_hash"] == texts_hash, "model_id"])


def main(options: Options) -> int:
    root = OutputRoot(options.root)
    out = options.out or root.model_map
    loglik_path = options.loglik or root.model_loglik
    models = discover_models(options.root, only=options.only)
    if not models:
        raise MissingInputError(
            f"no kept checkpoints (runs/*/epoch-*/run.json) under {options.root}; train a grid first "
            "(python -m training run)"
        )
    texts = _texts(options)
    digest = texts_hash(texts)
    done = set() if options.redo else _scored(loglik_path, digest)
    pending = [m for m in models if m.model_id not in done]
    with tempfile.TemporaryDirectory(prefix="model-map-") as tmp:
        texts_file = Path(tmp) / "model-map-texts.parquet"
        texts.to_parquet(texts_file, index=False)
        for model in tqdm(pending, desc="model map", unit="model"):
            rows = text_loglik(model, texts_file, options.batch_size, options.device)
            replace_rows(loglik_path, rows.assign(texts_hash=digest)[list(LOGLIK_COLUMNS)], key="model_id")
    loglik = pd.read_parquet(loglik_path)
    labels = pd.DataFrame([label(m) for m in models])
    frame, explained = model_map(loglik[loglik["texts_hash"] == digest], labels)
    write_parquet(out, frame)
    print(
        f"{len(pending)} model(s) scored on {len(texts)} texts, {len(models) - len(pending)} already done; map of "
        f"{len(frame)} models (axes explain {explained[0]:.0%} and {explained[1]:.0%}) in {out}"
    )
    return 0
