"""Hand-made score tables for the analysis tests (the right answers are known by construction)."""

from __future__ import annotations

import pandas as pd

from common.schema import conform


def row(
    model: str,
    base: str,
    dataset: str,
    method: str,
    benchmark: str,
    value: float,
    epoch: int = 10,
    size: int = 1000,
    schedule: str = "cosine",
    shots: int = 0,
    metric: str = "acc",
    flags: str = "",
) -> dict:
    is_base = method == "base"
    return {
        "model_id": base if is_base else model,
        "run_id": None if is_base else model,
        "base_model": f"org/{base}",
        "base_model_name": base,
        "dataset": "pretrain" if is_base else dataset,
        "method": method,
        "data_size": 0 if is_base else size,
        "epoch": 0 if is_base else epoch,
        "lr_schedule": "none" if is_base else schedule,
        "benchmark": benchmark,
        "shots": shots,
        "metric": metric,
        "value": float(value),
        "source": "lm-eval",
        "harness_version": "test",
        "evaluated_at": "2025-01-01T00:00:00Z",
        "flags": flags,
    }


def table(rows: list[dict]) -> pd.DataFrame:
    return conform(pd.DataFrame(rows))


def synergy_scores(
    gains: dict[tuple[str, str, str], float], method: str = "full", base_value: float = 50.0, **kwargs
) -> pd.DataFrame:
    """Base rows at ``base_value`` plus one model per (base, dataset) whose score = base + gain."""
    rows, seen = [], set()
    for (base, dataset, benchmark), gain in gains.items():
        if (base, benchmark) not in seen:
            seen.add((base, benchmark))
            rows.append(row(base, base, "pretrain", "base", benchmark, base_value))
        rows.append(
            row(f"{base}/{dataset}/{method}", base, dataset, method, benchmark, base_value + gain, **kwargs)
        )
    return table(rows)
