"""One loader per SFT dataset of the paper: where its rows live on the Hugging Face Hub and how a raw
row becomes an (instruction, response) pair with the paper's preprocessing.

Rows are read through the real ``datasets.load_dataset`` path, from the Hub by default or from a local
file/folder shaped like the Hub repo (``sources``). Sampling is deterministic: the rows that pass a
loader's filter are permuted with ``numpy.random.default_rng(seed)`` and taken in that order.

This module imports ``datasets`` lazily, so the grid validator can use the registry cheaply."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.catalog import ALL_MIXTURE, DATASET_HUB_IDS, FLAN_HUB_ID, LEAVE_ONE_OUT_PREFIX, PAPER_DATASETS
from common.errors import InputError
from training.demo_data import DEMO_DATASETS, demo_examples

# A source override: a local file (.json/.jsonl/.parquet/.csv), a local folder laid out like the Hub repo,
# or another Hub dataset id.
SourceOverride = str | os.PathLike[str]


class DataError(InputError):
    """A dataset cannot be prepared as asked (unknown name, too few rows, unreadable source)."""


@dataclass(frozen=True)
class Example:
    instruction: str
    response: str
    source: str  # source task (e.g. "boolq"), or the dataset name when it has a single source
    index: int  # row index in the source split, for traceability


@dataclass(frozen=True)
class HubSource:
    path: str  # first argument of datasets.load_dataset: a Hub id or a packaged builder ("json")
    split: str = "train"
    data_files: str | dict[str, str] | None = None


Row = Mapping[str, Any]


@dataclass(frozen=True)
class Loader:
    dataset: str
    source: HubSource
    convert: Callable[[Row], Example | None]  # None drops the row
    # Cheap pre-filter over a few columns (scanned without reading the long text columns).
    keep: Callable[[Row], bool] | None = None
    keep_columns: tuple[str, ...] = ()
    max_size: int | None = None  # the largest subset the paper allows (LIMA: 1,000)
    source_key: str = ""  # key under which ``sources`` may override it (default: the dataset name)
    notes: str = ""

    @property
    def override_keys(self) -> tuple[str, ...]:
        return (self.dataset, self.source_key) if self.source_key else (self.dataset,)


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _example(instruction: Any, response: Any, source: str, index: int) -> Example | None:
    """Rows with an empty instruction or response teach nothing: they are dropped."""
    instruction, response = _text(instruction), _text(response)
    return Example(instruction, response, source, index) if instruction and response else None


def merge_input(instruction: Any, extra_input: Any) -> str:
    """Alpaca-style ``input`` joined to the instruction with a blank line (the paper does not say how)."""
    instruction, extra_input = _text(instruction), _text(extra_input)
    return f"{instruction}\n\n{extra_input}" if extra_input else instruction


def _alpaca_like(name: str) -> Callable[[Row], Example | None]:
    def convert(row: Row) -> Example | None:
        return _example(merge_input(row["instruction"], row.get("input")), row["output"], name, row["_index"])

    return convert


def _lima(row: Row) -> Example | None:
    turns = row["conversations"]
    if len(turns) < 2:
        return None
    return _example(turns[0], turns[1], _text(row.get("source")) or "lima", row["_index"])


def _ultrachat(row: Row) -> Example | None:
    """First user turn and the assistant reply that follows it; later turns are dropped."""
    messages = row["messages"]
    for position, message in enumerate(messages[:-1]):
        if message["role"] == "user":
            reply = messages[position + 1]
            if reply["role"] != "assistant":
                return None
            return _example(message["content"], reply["content"], "ultrachat", row["_index"])
    return None


def _magicoder(row: Row) -> Example | None:
    return _example(row["instruction"], row["response"], "magicoder", row["_index"])


def _openmath(row: Row) -> Example | None:
    return _example(
        row["question"], row["generated_solution"], _text(row.get("dataset")) or "openmath", row["_index"]
    )


def _mathinstruct(row: Row) -> Example | None:
    return _example(row["instruction"], row["output"], _text(row.get("source")) or "math", row["_index"])


# FLAN 2021 task names (as in the FLAN collection's flan2021 submix) -> short source name.
FLAN_TASKS: dict[str, dict[str, str]] = {
    "flan_knowledge": {
        "bool_q:1.0.0": "boolq",
        "natural_questions_open:1.0.0": "nq_open",
        "trivia_qa/rc:1.1.0": "triviaqa_rc",
    },
    "flan_reasoning": {
        "ai2_arc/ARC-Easy:1.0.0": "arc_easy",
        "ai2_arc/ARC-Challenge:1.0.0": "arc_challenge",
        "hellaswag:1.1.0": "hellaswag",
        "winogrande:1.1.0": "winogrande",
        "piqa:1.0.0": "piqa",
    },
    "flan_comprehension": {"quac:1.0.0": "quac", "squad/v2.0:3.0.0": "squad_v2"},
}
FLAN_TEMPLATE_TYPE = "zs_noopt"  # zero-shot, no answer options
# The paper drops "none" outputs from these two (unanswerable SQuAD v2 / QuAC / BoolQ-like rows).
FLAN_DROP_NONE = ("flan_knowledge", "flan_comprehension")
FLAN_SOURCE = HubSource(FLAN_HUB_ID)


def _flan_keep(dataset: str) -> Callable[[Row], bool]:
    tasks, drop_none = FLAN_TASKS[dataset], dataset in FLAN_DROP_NONE

    def keep(row: Row) -> bool:
        if row["task_name"] not in tasks or row["template_type"] != FLAN_TEMPLATE_TYPE:
            return False
        return not (drop_none and _text(row["targets"]).lower() == "none")

    return keep


def _flan_convert(dataset: str) -> Callable[[Row], Example | None]:
    tasks = FLAN_TASKS[dataset]

    def convert(row: Row) -> Example | None:
        return _example(row["inputs"], row["targets"], tasks[row["task_name"]], row["_index"])

    return convert


def _flan_loader(dataset: str) -> Loader:
    return Loader(
        dataset,
        FLAN_SOURCE,
        _flan_convert(dataset),
        keep=_flan_keep(dataset),
        keep_columns=("task_name", "template_type", "targets"),
        source_key="flan2021",
        notes=f"FLAN 2021 {FLAN_TEMPLATE_TYPE} rows of tasks {sorted(FLAN_TASKS[dataset])}",
    )


LOADERS: dict[str, Loader] = {
    loader.dataset: loader
    for loader in (
        Loader(
            "alpaca_cleaned",
            HubSource(DATASET_HUB_IDS["alpaca_cleaned"]),
            _alpaca_like("alpaca_cleaned"),
            notes="instruction + '\\n\\n' + input (when non-empty) -> output",
        ),
        # The repo ships a loading script, which datasets>=4 refuses; its JSONL file is read directly.
        Loader(
            "lima",
            HubSource("json", data_files={"train": f"hf://datasets/{DATASET_HUB_IDS['lima']}/train.jsonl"}),
            _lima,
            max_size=1000,
            notes="first turn of `conversations`; the paper uses 1,000 pairs (no 20k)",
        ),
        Loader(
            "ultrachat",
            HubSource(DATASET_HUB_IDS["ultrachat"], split="train_sft"),
            _ultrachat,
            notes="first user message + first assistant reply of `messages`",
        ),
        Loader(
            "code_alpaca",
            HubSource(DATASET_HUB_IDS["code_alpaca"]),
            _alpaca_like("code_alpaca"),
            notes="instruction + '\\n\\n' + input (when non-empty) -> output",
        ),
        Loader("magicoder", HubSource(DATASET_HUB_IDS["magicoder"]), _magicoder),
        Loader(
            "openmath",
            HubSource(DATASET_HUB_IDS["openmath"], data_files={"train": "correct_solutions/train.jsonl"}),
            _openmath,
            keep=lambda row: bool(row["is_correct"]),
            keep_columns=("is_correct",),
            notes="question -> generated_solution, rows with is_correct only",
        ),
        Loader("math", HubSource(DATASET_HUB_IDS["math"]), _mathinstruct),
        *(_flan_loader(name) for name in FLAN_TASKS),
    )
}
assert tuple(LOADERS) == PAPER_DATASETS, "one loader per paper dataset, in the catalog's order"


@dataclass(frozen=True)
class Composite:
    """``all`` (every paper dataset's subset) or ``w/o-X`` (all but X), built from per-member subsets."""

    members: tuple[str, ...]


def composite(dataset: str) -> Composite | None:
    if dataset == ALL_MIXTURE:
        return Composite(PAPER_DATASETS)
    if dataset.startswith(LEAVE_ONE_OUT_PREFIX):
        left_out = dataset[len(LEAVE_ONE_OUT_PREFIX) :]
        if left_out in PAPER_DATASETS:
            return Composite(tuple(name for name in PAPER_DATASETS if name != left_out))
    return None


def known_datasets() -> list[str]:
    """Every dataset name a recipe may use."""
    return [
        *PAPER_DATASETS,
        *DEMO_DATASETS,
        ALL_MIXTURE,
        *(f"{LEAVE_ONE_OUT_PREFIX}{name}" for name in PAPER_DATASETS),
    ]


def max_size(dataset: str) -> int | None:
    loader = LOADERS.get(dataset)
    return loader.max_size if loader else None


def member_size(dataset: str, data_size: int) -> int:
    """Per-member subset size of a composite (``all`` at 10,000 = ten subsets of 1,000)."""
    members = composite(dataset).members
    if data_size % len(members):
        raise DataError(
            f"{dataset!r} merges {len(members)} equal subsets, so data_size must be a multiple "
            f"of {len(members)}; got {data_size}"
        )
    return data_size // len(members)


# ---------------------------------------------------------------- reading sources

_BUILDERS = {".json": "json", ".jsonl": "json", ".parquet": "parquet", ".csv": "csv"}


def source_override(dataset: str, sources: Mapping[str, SourceOverride] | None) -> SourceOverride | None:
    loader = LOADERS.get(dataset)
    keys = loader.override_keys if loader else (dataset,)
    return next((sources[key] for key in keys if sources and key in sources), None)


def load_rows(loader: Loader, override: SourceOverride | None = None):
    """The raw source split as a ``datasets.Dataset``."""
    from datasets import load_dataset

    spec = loader.source
    try:
        if override is None:
            return load_dataset(spec.path, data_files=spec.data_files, split=spec.split)
        path = Path(override)
        if path.is_file():
            if path.suffix not in _BUILDERS:
                raise DataError(f"{path}: unsupported file type; use one of {sorted(_BUILDERS)}")
            return load_dataset(_BUILDERS[path.suffix], data_files=str(path), split="train")
        if path.is_dir():
            return _pick_split(load_dataset(str(path)), spec.split, path)
        return load_dataset(str(override), split=spec.split)  # another Hub id
    except DataError:
        raise
    except Exception as error:  # datasets raises many types; name the dataset and the way out
        where = override if override is not None else spec.data_files or spec.path
        raise DataError(
            f"cannot read the source of {loader.dataset!r} ({where}): {error}. Without Hub access, "
            f"point it at a local copy: --source {loader.dataset}=PATH"
        ) from error


def _pick_split(splits, wanted: str, path: Path):
    for name in (wanted, "train"):
        if name in splits:
            return splits[name]
    if len(splits) == 1:
        return next(iter(splits.values()))
    raise DataError(f"{path}: no split {wanted!r} or 'train' among {sorted(splits)}")


def _candidates(loader: Loader, rows) -> list[int]:
    """Indices of rows passing the loader's cheap filter, scanning only the columns it needs."""
    if loader.keep is None:
        return list(range(len(rows)))
    kept: list[int] = []
    offset = 0
    for batch in rows.select_columns(list(loader.keep_columns)).iter(batch_size=10_000):
        size = len(batch[loader.keep_columns[0]])
        kept.extend(
            offset + i for i in range(size) if loader.keep({c: batch[c][i] for c in loader.keep_columns})
        )
        offset += size
    return kept


def _converted(loader: Loader, rows, order: list[int], chunk: int) -> Iterator[Example]:
    for start in range(0, len(order), chunk):
        indices = order[start : start + chunk]
        for index, row in zip(indices, rows.select(indices), strict=True):
            example = loader.convert({**row, "_index": index})
            if example is not None:
                yield example


def sample_examples(
    dataset: str, data_size: int, seed: int = 0, sources: Mapping[str, SourceOverride] | None = None
) -> list[Example]:
    """``data_size`` examples of one (non-composite) dataset, the same for the same seed and source."""

    if dataset in DEMO_DATASETS:
        return [
            Example(e["instruction"], e["response"], dataset, i)
            for i, e in enumerate(demo_examples(dataset, "train", data_size, seed=seed))
        ]
    if dataset not in LOADERS:
        raise DataError(f"unknown dataset {dataset!r}; choose one of {known_datasets()}")
    loader = LOADERS[dataset]
    if loader.max_size is not None and data_size > loader.max_size:
        raise DataError(f"{dataset!r} has at most {loader.max_size} samples in the paper; asked {data_size}")
    rows = load_rows(loader, source_override(dataset, sources))
    candidates = _candidates(loader, rows)
    order = [candidates[i] for i in np.random.default_rng(seed).permutation(len(candidates))]
    examples: list[Example] = []
    for example in _converted(loader, rows, order, chunk=max(2 * data_size, 256)):
        examples.append(example)
        if len(examples) == data_size:
            return examples
    raise DataError(
        f"{dataset!r}: only {len(examples)} usable rows in the source after preprocessing, "
        f"{data_size} asked; lower data_size or check the source"
    )
