"""The authors' released results table (``evaluation_result.csv``): its columns and what each one
scores. Read by the importer and by the quality checks."""

from __future__ import annotations

from common.catalog import BENCHMARK_FAMILIES
from common.schema import wide_column

METADATA_COLUMNS: tuple[str, ...] = ("model_name", "data_name", "lora", "epoch", "data_size", "lr_strategy")

# The single mapping from a released-table column to (benchmark, shots, metric). Benchmark names are
# common.catalog.BENCHMARK_FAMILIES keys; the order is the table's column order.
COLUMN_MAP: dict[str, tuple[str, int, str]] = {
    "mbpp_4shot": ("mbpp", 4, "pass@1"),
    "math-0shot": ("math", 0, "exact_match"),
    "gsm8k-4shot": ("gsm8k", 4, "exact_match"),
    "humaneval-0shot": ("humaneval", 0, "pass@1"),
    "hellaswag-10shot": ("hellaswag", 10, "acc"),
    "nq-1shot": ("nq", 1, "exact_match"),
    "BoolQ-5shot": ("boolq", 5, "acc"),
    "mmlu-5shot": ("mmlu", 5, "acc"),
    "mtbench-total": ("mtbench", 0, "total"),
    "mtbench-writing": ("mtbench", 0, "writing"),
    "mtbench-roleplay": ("mtbench", 0, "roleplay"),
    "mtbench-reasoning": ("mtbench", 0, "reasoning"),
    "mtbench-math": ("mtbench", 0, "math"),
    "mtbench-coding": ("mtbench", 0, "coding"),
    "mtbench-extraction": ("mtbench", 0, "extraction"),
    "mtbench-stem": ("mtbench", 0, "stem"),
    "mtbench-humanities": ("mtbench", 0, "humanities"),
    "alpaca_eval_v2-total": ("alpaca_eval_v2", 0, "win_rate"),
    "mbpp-0shot": ("mbpp", 0, "pass@1"),
    "gsm8k-0shot": ("gsm8k", 0, "exact_match"),
    "nq-0shot": ("nq", 0, "exact_match"),
    "nq-5shot": ("nq", 5, "exact_match"),
    "nq-25shot": ("nq", 25, "exact_match"),
    "BoolQ-0shot": ("boolq", 0, "acc"),
    "hellaswag-0shot": ("hellaswag", 0, "acc"),
    "mmlu-0shot": ("mmlu", 0, "acc"),
    "Truthful_QA-0shot": ("truthfulqa", 0, "acc"),
    "LongBench-v2-0shot": ("longbench_v2", 0, "acc"),
    "jmmlu-0shot": ("jmmlu", 0, "acc"),
    "cmmlu-0shot": ("cmmlu", 0, "acc"),
}
SCORE_COLUMNS_IN_TABLE: tuple[str, ...] = tuple(COLUMN_MAP)
assert {b for b, _, _ in COLUMN_MAP.values()} <= set(BENCHMARK_FAMILIES), (
    "COLUMN_MAP names an unknown benchmark"
)
assert len({wide_column(*t) for t in COLUMN_MAP.values()}) == len(COLUMN_MAP), "COLUMN_MAP is not one-to-one"
