"""About tab: the study, how to cite it, code to download a model, and the data-quality notes."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from common.catalog import BASE_MODELS_BY_NAME
from common.citation import BIBTEX

STUDY = """
### The study
**Massive Supervised Fine-tuning Experiments Reveal How Data, Layer, and Training Factors Shape LLM
Alignment Quality** — Yuto Harada, Yusuke Yamauchi, Yusuke Oda, Yohei Oseki, Yusuke Miyao, Yu Takagi
(EMNLP 2025, [arXiv 2506.14681](https://arxiv.org/abs/2506.14681)).

- **12 base models** of 7–9B parameters: English (OLMo-7B, Llama-3-8B, Mistral-7B, Gemma-2-9B), Chinese
  (Qwen2.5-7B, Llama-3-Chinese-8B, Chinese-Mistral-7B, Yi-1.5-9B) and Japanese (LLM-jp-3-7B,
  Llama-3-Swallow-8B, Swallow-Mistral-7B, Sarashina2-7B).
- **10 English SFT datasets** (Alpaca-cleaned, LIMA, UltraChat, CodeAlpaca, Magicoder, OpenMathInstruct,
  MathInstruct, FLAN knowledge / reasoning / comprehension), 1k samples each; their mixture `all`,
  leave-one-out mixtures `w/o-X`, and 20k subsets for the size study.
- **1,070 training runs** (full fine-tuning and LoRA, cosine and constant schedules, 1–10 epochs), evaluated
  on about 15 benchmarks (MATH, GSM8K, HumanEval, MBPP, BoolQ, NaturalQuestions, TruthfulQA, MMLU, CMMLU,
  JMMLU, HellaSwag, LongBench-v2, MT-Bench, AlpacaEval 2). Scores are in percent, MT-Bench on its 1–10 scale.
- Findings: some training-task synergies hold for every model while others are model-specific; the
  perplexity of the training data under the base model predicts gains better than surface similarity;
  the weight change correlates best with gains in the middle layers.

The **gain** of a model is its score minus its base model's score on the same benchmark and shot setting.
The **average** is the plain mean of the selected benchmark columns, skipping missing scores.
"""

CITATION = BIBTEX


def download_code(row: dict[str, Any] | None) -> str:
    """Copyable Python that downloads this model at its epoch revision and loads it (or its adapter)."""
    if not row:
        return "# Pick a model above to get the code for it."
    repo, revision = row.get("repo_id"), row.get("revision")
    base_name = row.get("base_model_name") or ""
    base = row.get("base_model") or (
        BASE_MODELS_BY_NAME[base_name].hf_id if base_name in BASE_MODELS_BY_NAME else base_name
    )
    if not repo or pd.isna(repo):
        return (
            f"# {row.get('model_id')} has no published repository (its weights are not on the Hub).\n"
            f"# Its base model can be loaded with:\n"
            f"from transformers import AutoModelForCausalLM\n"
            f"model = AutoModelForCausalLM.from_pretrained({base!r})"
        )
    revision_arg = f", revision={revision!r}" if revision and not pd.isna(revision) else ""
    header = (
        f"from huggingface_hub import snapshot_download\n\n"
        f"# the files of {row.get('model_id')} (epoch {row.get('epoch')})\n"
        f"path = snapshot_download({repo!r}{revision_arg})\n\n"
    )
    tokenizer = f"tokenizer = AutoTokenizer.from_pretrained({repo!r}{revision_arg})\n"
    if row.get("method") == "lora":
        return header + (
            "from peft import PeftModel\n"
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
            f"base = AutoModelForCausalLM.from_pretrained({base!r})\n"
            f"model = PeftModel.from_pretrained(base, {repo!r}{revision_arg})\n"
            "model = model.merge_and_unload()  # optional: a plain model without peft\n" + tokenizer
        )
    return header + (
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
        f"model = AutoModelForCausalLM.from_pretrained({repo!r}{revision_arg})\n" + tokenizer
    )


def _finding_lines(findings: Any) -> list[str]:
    if isinstance(findings, dict):
        lines = []
        for name, value in findings.items():
            if isinstance(value, (dict, list)):
                size = len(value)
                summary = value.get("summary") if isinstance(value, dict) else None
                detail = summary or (f"{size} item(s)" if size else "none")
                lines.append(f"- **{name}**: {detail}")
            else:
                lines.append(f"- **{name}**: {value}")
        return lines
    if isinstance(findings, list):
        return [f"- {json.dumps(item, default=str)[:300]}" for item in findings]
    return [f"- {findings}"]


def quality_markdown(quality: Any) -> str:
    if not quality:
        return "*The results dataset has no quality.json: no data-quality notes were published.*"
    summary = quality.get("summary") if isinstance(quality, dict) else None
    if isinstance(summary, list) and summary:
        # The importer's own one-line-per-finding summary (evaluation.quality.summary_lines).
        return (
            "### Data-quality notes\nWhat the importer found in the released table (scores involved "
            "are flagged in `data/scores.parquet`):\n\n" + "\n".join(f"- {line}" for line in summary)
        )
    return (
        "### Data-quality notes\nWhat the importer found in the released table (scores involved are "
        "flagged in `data/scores.parquet`):\n\n" + "\n".join(_finding_lines(quality))
    )
