"""Judged benchmarks: MT-Bench (single-answer grading, 1-10) and AlpacaEval 2 (win rate and
length-controlled win rate against reference outputs), scored by any OpenAI-compatible chat endpoint.

The model under test generates its answers here (``answers``); the judge (``client``) scores them with
the benchmarks' published prompts (``prompts/``); both are cached per (model, benchmark, judge)
(``cache``), and ``run`` turns the judgments into ``scores.parquet`` rows on the released table's scale."""
