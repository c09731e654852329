"""What the paper fixes: its base models, its SFT datasets and its benchmarks.

Names in ``table_name`` are the spellings used in the authors' released results table."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BaseModel:
    table_name: str
    hf_id: str
    language: str  # "English" | "Chinese" | "Japanese" | "demo"
    license: str  # SPDX-style id as on the Hub (lowercase); fine-tunes inherit it
    parameters_b: float  # parameter count in billions (embeddings included), from the config
    evaluated: bool = True


# Licenses and sizes as the base models' Hub cards state them. The Llama-3 derivatives (Chinese, Swallow)
# inherit Meta's Llama 3 license; Gemma 2 its Gemma terms of use.
PAPER_BASE_MODELS: tuple[BaseModel, ...] = (
    BaseModel("OLMo-7B-hf", "allenai/OLMo-7B-hf", "English", "apache-2.0", 6.9),
    BaseModel("Meta-Llama-3-8B", "meta-llama/Meta-Llama-3-8B", "English", "llama3", 8.0),
    BaseModel("Mistral-7B-v0.1", "mistralai/Mistral-7B-v0.1", "English", "apache-2.0", 7.2),
    BaseModel("Gemma2-9B", "google/gemma-2-9b", "English", "gemma", 9.2),
    BaseModel("Qwen2.5-7B", "Qwen/Qwen2.5-7B", "Chinese", "apache-2.0", 7.6),
    BaseModel("llama-3-chinese-8b", "hfl/llama-3-chinese-8b", "Chinese", "llama3", 8.0),
    BaseModel("Chinese-Mistral-7B-v0.1", "itpossible/Chinese-Mistral-7B-v0.1", "Chinese", "apache-2.0", 7.5),
    BaseModel("Yi-1.5-9B", "01-ai/Yi-1.5-9B", "Chinese", "apache-2.0", 8.8),
    BaseModel("LLM-jp-3-7B", "llm-jp/llm-jp-3-7.2b", "Japanese", "apache-2.0", 7.3),
    BaseModel("Llama-3-Swallow-8B-v0.1", "tokyotech-llm/Llama-3-Swallow-8B-v0.1", "Japanese", "llama3", 8.0),
    BaseModel(
        "Swallow-Mistral-7B",
        "tokyotech-llm/Swallow-MS-7b-v0.1",
        "Japanese",
        "apache-2.0",
        7.3,
        evaluated=False,
    ),
    BaseModel("Sarashina2-7B", "sbintuitions/sarashina2-7b", "Japanese", "mit", 7.3),
)

BASE_MODELS_BY_NAME: dict[str, BaseModel] = {m.table_name: m for m in PAPER_BASE_MODELS}
BASE_MODELS_BY_HF_ID: dict[str, BaseModel] = {m.hf_id: m for m in PAPER_BASE_MODELS}

# The ten English SFT datasets, in the order the paper lists them.
PAPER_DATASETS: tuple[str, ...] = (
    "alpaca_cleaned",
    "lima",
    "ultrachat",
    "code_alpaca",
    "magicoder",
    "openmath",
    "math",
    "flan_knowledge",
    "flan_reasoning",
    "flan_comprehension",
)

# Where each SFT dataset lives on the Hub (training downloads it, the model cards cite it).
FLAN_HUB_ID = "DataProvenanceInitiative/flan2021_submix_original"  # the three FLAN splits' common source
DATASET_HUB_IDS: dict[str, str] = {
    "alpaca_cleaned": "yahma/alpaca-cleaned",
    "lima": "GAIR/lima",
    "ultrachat": "HuggingFaceH4/ultrachat_200k",
    "code_alpaca": "sahil2801/CodeAlpaca-20k",
    "magicoder": "ise-uiuc/Magicoder-Evol-Instruct-110K",
    "openmath": "nvidia/OpenMathInstruct-1",
    "math": "TIGER-Lab/MathInstruct",
    "flan_knowledge": FLAN_HUB_ID,
    "flan_reasoning": FLAN_HUB_ID,
    "flan_comprehension": FLAN_HUB_ID,
}

# Rows of the released table that are the untuned base model.
PRETRAIN = "pretrain"
# The mixture of all ten 1k subsets, and the leave-one-out prefix ("w/o-lima").
ALL_MIXTURE = "all"
LEAVE_ONE_OUT_PREFIX = "w/o-"

# Benchmark -> family, used for column groups in the leaderboard and for the report.
BENCHMARK_FAMILIES: dict[str, str] = {
    "math": "math",
    "gsm8k": "math",
    "humaneval": "code",
    "mbpp": "code",
    "boolq": "knowledge",
    "nq": "knowledge",
    "truthfulqa": "knowledge",
    "mmlu": "knowledge",
    "cmmlu": "multilingual",
    "jmmlu": "multilingual",
    "hellaswag": "reasoning",
    "longbench_v2": "long-context",
    "mtbench": "chat",
    "alpaca_eval_v2": "chat",
}


# Benchmarks scored by a judge model (MT-Bench, AlpacaEval 2): one score per metric, no shot setting.
JUDGED_BENCHMARKS: tuple[str, ...] = ("mtbench", "alpaca_eval_v2")


def benchmark_family(benchmark: str) -> str:
    return BENCHMARK_FAMILIES.get(benchmark, "demo" if benchmark.startswith("demo_") else "other")


# Benchmarks not scored in percent; every other benchmark is (accuracy, pass@1, win rate, ...).
SCORE_SCALES: dict[str, str] = {"mtbench": "1-10"}
PERCENT = "%"


def score_scale(benchmark: str) -> str:
    """The scale of a benchmark's scores: averages and comparisons only mix scores of one scale."""
    return SCORE_SCALES.get(benchmark, PERCENT)


def language_of(base_model_name: str) -> str:
    model = BASE_MODELS_BY_NAME.get(base_model_name)
    return model.language if model else "demo"


# The range a benchmark's score can take, on the scales of the released table and of our scores:
# MT-Bench is a 1-10 judge score, every other benchmark (AlpacaEval's win rate included) a percentage.
PERCENT_RANGE: tuple[float, float] = (0.0, 100.0)
SCORE_RANGES: dict[str, tuple[float, float]] = {"mtbench": (1.0, 10.0)}


def score_range(benchmark: str) -> tuple[float, float]:
    """(lowest, highest) score of a benchmark."""
    return SCORE_RANGES.get(str(benchmark), PERCENT_RANGE)
