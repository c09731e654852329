"""lm-eval warnings that say nothing to our users, filtered so that real warnings stand out.

- "Overwriting default num_fewshot": every suite entry names its shots on purpose, so lm-eval warns once
  per task and model (182 times in the demo) about what the suite asked for.
- "Left truncation applied": a long few-shot prompt cut to the model's context; it is reported once per
  process, since one line per batch (78 in the demo) buries everything else."""

from __future__ import annotations

import logging

_EXPECTED = "Overwriting default num_fewshot"
_ONCE = "Left truncation applied"


class LmEvalNoiseFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.truncations = 0

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith(_EXPECTED):
            return False
        if message.startswith(_ONCE):
            self.truncations += 1
            if self.truncations > 1:
                return False
            record.msg = f"{message} (reported once; later truncations are not logged)"
        return True


def quiet_lm_eval() -> None:
    """Install the filter on lm-eval's loggers (idempotent)."""
    for name in ("lm_eval.evaluator", "lm_eval.models.huggingface"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, LmEvalNoiseFilter) for f in logger.filters):
            logger.addFilter(LmEvalNoiseFilter())
