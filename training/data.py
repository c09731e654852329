"""Prepared training sets: subsample a dataset, render it with a template, cache it as parquet.

``<root>/data/<dataset>__<size>__<hash>.parquet`` holds the columns of docs/ARCHITECTURE.md; ``<hash>`` is
the content hash of the rows (``data_hash`` in every run record). A small key file under
``<root>/data/.keys/`` maps the inputs (dataset, size, seed, template, tokenizer, source) to that file,
so a second call finds it without reading the source again."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from common.io import read_json, stable_hash, write_json, write_parquet
from common.layout import OutputRoot
from common.template import render_prompt
from training.loaders import (
    DataError,
    Example,
    SourceOverride,
    composite,
    member_size,
    sample_examples,
    source_override,
)
from training.spec import TEMPLATES

COLUMNS = ("id", "dataset", "source", "instruction", "response", "text", "prompt")
# Bump when preprocessing changes, so caches built by older code are not reused.
PREPARE_VERSION = 1


@dataclass(frozen=True)
class PreparedData:
    path: Path
    data_hash: str
    num_samples: int


def file_stem(dataset: str) -> str:
    """``w/o-lima`` -> ``w-o-lima``: the same spelling as in run ids."""
    return dataset.replace("/", "-")


def read_prepared(path: str | os.PathLike[str]) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path} is not a prepared training set: columns {missing} are missing")
    return frame


# ---------------------------------------------------------------- rendering


def _chat_prompt(tokenizer: Any, instruction: str) -> str:
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": instruction}], tokenize=False, add_generation_prompt=True
    )


def _chat_text(tokenizer: Any, instruction: str, response: str, prompt: str) -> str:
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": instruction}, {"role": "assistant", "content": response}], tokenize=False
    )
    if not text.startswith(prompt):
        # Response-only loss needs the prompt to be a prefix of the sample.
        raise DataError(
            "the tokenizer's chat template does not render the prompt as a prefix of the full "
            "conversation, so the response cannot be isolated; use template 'paper'"
        )
    return text


def render(
    instruction: str, response: str, template: str = "paper", tokenizer: Any = None
) -> tuple[str, str]:
    """(prompt, text) of one sample. ``paper``: ###Question/###Answer; ``chat``: the tokenizer's template."""
    if template == "paper":
        prompt = render_prompt(instruction)
        return prompt, prompt + response
    prompt = _chat_prompt(tokenizer, instruction)
    return prompt, _chat_text(tokenizer, instruction, response, prompt)


def _frame(dataset: str, examples: list[Example], template: str, tokenizer: Any) -> pd.DataFrame:
    rows = []
    for example in examples:
        prompt, text = render(example.instruction, example.response, template, tokenizer)
        rows.append(
            {
                "id": f"{dataset}-{example.index}",
                "dataset": dataset,
                "source": example.source,
                "instruction": example.instruction,
                "response": example.response,
                "text": text,
                "prompt": prompt,
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def content_hash(frame: pd.DataFrame) -> str:
    return stable_hash(frame[list(COLUMNS)].to_dict("records"), 12)


# ---------------------------------------------------------------- cache keys


def _tokenizer_identity(tokenizer: Any) -> dict[str, Any] | None:
    if tokenizer is None:
        return None
    template = getattr(tokenizer, "chat_template", None)
    return {"name": getattr(tokenizer, "name_or_path", ""), "chat_template": stable_hash(str(template), 12)}


def _file_stats(path: Path) -> list[tuple[str, int, int]]:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [
        (str(f.relative_to(path) if f != path else f.name), f.stat().st_size, f.stat().st_mtime_ns)
        for f in files
    ]


def _override_identity(override: SourceOverride | None) -> Any:
    """Identity of a source override: a local path with its files' sizes and times, or a Hub id."""
    if override is None:
        return None
    path = Path(override)
    if path.exists():
        return {"path": str(path.resolve()), "files": _file_stats(path)}
    return {"hub": str(override)}


def source_identity(dataset: str, sources: Mapping[str, SourceOverride] | None) -> Any:
    """None when every source is the default (Hub); otherwise what the overrides are."""
    mixture = composite(dataset)
    names = mixture.members if mixture else (dataset,)
    overrides = {name: _override_identity(source_override(name, sources)) for name in names}
    overrides = {name: value for name, value in overrides.items() if value is not None}
    return overrides or None


def _key_path(root: Path, inputs: dict[str, Any]) -> Path:
    return OutputRoot(root).data_keys_dir / f"{stable_hash(inputs, 20)}.json"


def _cached(key_file: Path, sources: Any) -> PreparedData | None:
    """The prepared file for these inputs. Without explicit sources, whatever was prepared is reused
    (so ``run`` finds what ``prepare --source`` built); with sources, they must be the same."""
    if not key_file.exists():
        return None
    entry = read_json(key_file)
    path = key_file.parents[1] / entry["file"]
    if not path.exists() or (sources is not None and entry.get("sources") != sources):
        return None
    return PreparedData(path, entry["data_hash"], entry["num_samples"])


# ---------------------------------------------------------------- preparing


def _check_inputs(dataset: str, data_size: int, template: str, tokenizer: Any) -> None:
    if template not in TEMPLATES:
        raise DataError(f"unknown template {template!r}; choose one of {list(TEMPLATES)}")
    if template == "chat" and tokenizer is None:
        raise DataError("template 'chat' renders with the base model's tokenizer: pass tokenizer=")
    if data_size <= 0:
        raise DataError(f"data_size must be positive, got {data_size}")


def _build(
    dataset: str,
    data_size: int,
    root: Path,
    seed: int,
    template: str,
    tokenizer: Any,
    sources: Mapping[str, SourceOverride] | None,
) -> pd.DataFrame:
    mixture = composite(dataset)
    if mixture is None:
        return _frame(dataset, sample_examples(dataset, data_size, seed, sources), template, tokenizer)
    # ``all`` / ``w/o-X``: the members' own cached subsets, so every mixture shares the same 1k rows.
    size = member_size(dataset, data_size)
    parts = [
        read_prepared(prepare_dataset(member, size, root, seed, template, tokenizer, sources).path)
        for member in mixture.members
    ]
    return pd.concat(parts, ignore_index=True)


def prepare_dataset(
    dataset: str,
    data_size: int,
    root: str | os.PathLike[str],
    seed: int = 0,
    template: str = "paper",
    tokenizer: Any = None,
    sources: Mapping[str, SourceOverride] | None = None,
) -> PreparedData:
    """Prepare (or find the cached) training set; see the module docstring for the layout."""
    root = Path(root)
    _check_inputs(dataset, data_size, template, tokenizer)
    inputs = {
        "dataset": dataset,
        "data_size": data_size,
        "seed": seed,
        "template": template,
        "tokenizer": _tokenizer_identity(tokenizer) if template == "chat" else None,
        "version": PREPARE_VERSION,
    }
    key_file = _key_path(root, inputs)
    source_id = source_identity(dataset, sources)
    cached = _cached(key_file, source_id)
    if cached is not None:
        return cached
    frame = _build(dataset, data_size, root, seed, template, tokenizer, sources)
    data_hash = content_hash(frame)
    path = OutputRoot(root).data_dir / f"{file_stem(dataset)}__{data_size}__{data_hash}.parquet"
    if not path.exists():
        write_parquet(path, frame)
    write_json(
        key_file,
        {
            "file": path.name,
            "data_hash": data_hash,
            "num_samples": len(frame),
            "inputs": inputs,
            "sources": source_id,
        },
    )
    return PreparedData(path, data_hash, len(frame))


def prepare_job_data(job: Mapping[str, Any], root: str | os.PathLike[str], tokenizer: Any) -> PreparedData:
    """The training set of one job record (``Job.to_record()``, a ``jobs.jsonl`` line), as the trainer
    and the perplexity of the training data both read it; ``tokenizer`` renders the chat template."""
    return prepare_dataset(
        job["dataset"],
        int(job["data_size"]),
        root,
        seed=int(job["seed"]),
        template=job["template"],
        tokenizer=tokenizer if job["template"] == "chat" else None,
    )
