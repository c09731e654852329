"""Where the judged benchmarks' questions and reference outputs come from: their Hub datasets by
default (names as the community publishes them), or a local path with the same content.

- MT-Bench: ``HuggingFaceH4/mt_bench_prompts`` (split ``train``: ``prompt`` [2 turns], ``prompt_id``,
  ``category``, ``reference``), loaded with ``datasets``. A local path may be that table as parquet or
  JSON lines, or FastChat's layout (``question.jsonl`` with ``question_id``/``turns``, and
  ``reference_answer/gpt-4.jsonl``), as a folder or a single file.
- AlpacaEval 2: files of the ``tatsu-lab/alpaca_eval`` dataset repo, fetched with ``hf_hub_download``:
  ``alpaca_eval_gpt4_baseline.json`` (the 805 instructions and GPT-4 Turbo's outputs) and
  ``df_gamed.csv`` (the length-controlled GLM's baselines and instruction difficulties). A local path is
  a folder holding those files, or the JSON file itself (``df_gamed.csv`` then next to it, optional)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from common.errors import InputError
from evaluation.judged.alpacaeval import Instruction
from evaluation.judged.mtbench import CATEGORIES, Question

MTBENCH_DATASET = "HuggingFaceH4/mt_bench_prompts"
ALPACAEVAL_DATASET = "tatsu-lab/alpaca_eval"
ALPACAEVAL_REFERENCES = "alpaca_eval_gpt4_baseline.json"
ALPACAEVAL_GLM_DATA = "df_gamed.csv"
# Tiny offline stand-ins for the demo pipeline (demo/README.md)
DEMO_DIR = Path(__file__).resolve().parent / "demo"
DEMO_MTBENCH = DEMO_DIR / "mtbench_questions.jsonl"
DEMO_ALPACAEVAL = DEMO_DIR / ALPACAEVAL_REFERENCES


class JudgedDataError(InputError):
    """Benchmark data that cannot be found or does not have the expected fields."""


# ---------------------------------------------------------------- MT-Bench


def _read_records(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        return pd.read_parquet(path).to_dict("records")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in list(value)]


def _question(record: dict[str, Any], references: dict[str, list[str]], where: str) -> Question:
    turns = _as_list(record.get("turns", record.get("prompt")))
    qid = str(record.get("question_id", record.get("prompt_id", "")))
    category = record.get("category")
    if len(turns) != 2 or not qid or category not in CATEGORIES:
        raise JudgedDataError(
            f"{where}: an MT-Bench question needs an id (question_id or prompt_id), two turns (turns or "
            f"prompt) and a category in {list(CATEGORIES)}; got {sorted(record)} (id {qid!r}, "
            f"{len(turns)} turns, category {category!r})"
        )
    reference = _as_list(record.get("reference")) or references.get(qid, [])
    return Question(qid, str(category), tuple(turns), tuple(reference))


def _fastchat_references(folder: Path) -> dict[str, list[str]]:
    path = folder / "reference_answer" / "gpt-4.jsonl"
    if not path.is_file():
        return {}
    return {str(r["question_id"]): _as_list(r["choices"][0]["turns"]) for r in _read_records(path)}


def load_mtbench(source: str = MTBENCH_DATASET, limit: int | None = None) -> list[Question]:
    path = Path(source)
    if path.exists():
        folder = path if path.is_dir() else path.parent
        files = (
            [path]
            if path.is_file()
            else sorted(path.glob("question.jsonl")) or sorted(path.glob("*.parquet"))
        )
        if not files:
            raise JudgedDataError(f"{path}: no question.jsonl or *.parquet with MT-Bench questions")
        records = [r for f in files for r in _read_records(f)]
        references = _fastchat_references(folder)
    else:
        records, references = _hub_rows(source), {}
    questions = [_question(r, references, source) for r in records]
    return questions[:limit] if limit else questions


def _hub_rows(repo_id: str) -> list[dict[str, Any]]:
    import datasets  # heavy: only when the Hub dataset is used

    try:
        return list(datasets.load_dataset(repo_id, split="train"))
    except Exception as error:  # datasets raises many types for a missing or unreachable dataset
        raise JudgedDataError(
            f"cannot load the Hub dataset {repo_id} ({type(error).__name__}: {str(error)[:200]}); check "
            "the network or HF_ENDPOINT, or pass a local copy with --mtbench-data PATH"
        ) from None


# ---------------------------------------------------------------- AlpacaEval 2


@dataclass(frozen=True)
class AlpacaEvalData:
    instructions: list[Instruction]
    gamed: pd.DataFrame | None  # the GLM's baselines (df_gamed.csv); None: no length control
    baseline: str  # the reference outputs' generator

    @property
    def difficulty(self) -> pd.Series:
        assert self.gamed is not None
        return self.gamed.drop_duplicates("index").set_index("index")["instruction_difficulty"]


def _hub_file(repo_id: str, filename: str, required: bool = True) -> Path | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(hf_hub_download(repo_id, filename, repo_type="dataset"))
    except EntryNotFoundError:
        if required:
            raise JudgedDataError(f"the Hub dataset {repo_id} has no file {filename}") from None
        return None
    except Exception as error:  # connection and repository errors
        raise JudgedDataError(
            f"cannot download {filename} from the Hub dataset {repo_id} ({type(error).__name__}); check "
            "the network or HF_ENDPOINT, or pass a local copy with --alpacaeval-data PATH"
        ) from None


def _local_files(path: Path) -> tuple[Path, Path | None]:
    references = path / ALPACAEVAL_REFERENCES if path.is_dir() else path
    if not references.is_file():
        raise JudgedDataError(f"{path}: no {ALPACAEVAL_REFERENCES} (AlpacaEval reference outputs)")
    gamed = references.parent / ALPACAEVAL_GLM_DATA
    return references, gamed if gamed.is_file() else None


def load_alpacaeval(source: str = ALPACAEVAL_DATASET, limit: int | None = None) -> AlpacaEvalData:
    path = Path(source)
    if path.exists():
        references_file, gamed_file = _local_files(path)
    else:
        references_file = _hub_file(source, ALPACAEVAL_REFERENCES)
        gamed_file = _hub_file(source, ALPACAEVAL_GLM_DATA, required=False)
    assert references_file is not None
    records = _read_records(references_file)
    missing = [i for i, r in enumerate(records) if "instruction" not in r or "output" not in r]
    if missing:
        raise JudgedDataError(
            f"{source}: reference rows need 'instruction' and 'output'; row {missing[0]} has "
            f"{sorted(records[missing[0]])}"
        )
    instructions = [
        Instruction(i, str(r["instruction"]), str(r["output"]), str(r.get("dataset", "")))
        for i, r in enumerate(records)
    ]
    generators = sorted({str(r.get("generator", "reference")) for r in records})
    gamed = pd.read_csv(gamed_file) if gamed_file is not None else None
    return AlpacaEvalData(instructions[:limit] if limit else instructions, gamed, ",".join(generators))
