"""lm-eval's expected warnings are filtered; everything else still reaches the user."""

from __future__ import annotations

import logging

from evaluation.quiet_logs import quiet_lm_eval


def test_expected_lm_eval_warnings_are_filtered_others_pass(caplog) -> None:
    quiet_lm_eval()
    quiet_lm_eval()  # idempotent: one filter
    evaluator = logging.getLogger("lm_eval.evaluator")
    hf = logging.getLogger("lm_eval.models.huggingface")
    assert len(evaluator.filters) == 1
    with caplog.at_level(logging.WARNING):
        for task in range(5):
            evaluator.warning("Overwriting default num_fewshot of %s from %s to %s", f"t{task}", 5, 0)
        for _ in range(4):
            hf.warning("Left truncation applied. Original sequence length was 900, truncating to last 512")
        evaluator.warning("Task t0 has no test split")
    messages = [r.getMessage() for r in caplog.records]
    assert not any("num_fewshot" in m for m in messages)
    assert sum("Left truncation" in m for m in messages) == 1 and "reported once" in messages[0]
    assert "Task t0 has no test split" in messages
