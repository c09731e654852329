"""Gains for the analyses: ``common.gains`` (the one implementation) over a schema-checked scores table,
with the analyses' error when the table has no base-model rows."""

from __future__ import annotations

import pandas as pd

from analysis.common import MissingInputError
from common import gains
from common.gains import GAIN_COLUMNS, split_base
from common.schema import conform

__all__ = ["GAIN_COLUMNS", "compute_gains", "missing_base_models", "split_base"]


def missing_base_models(scores: pd.DataFrame) -> list[str]:
    """Base models that have fine-tuned rows but no base-model (``pretrain``) rows to compare with."""
    return gains.missing_base_models(conform(scores))


def compute_gains(scores: pd.DataFrame) -> pd.DataFrame:
    """``common.gains.compute_gains``; raises ``MissingInputError`` when there are no base-model rows."""
    try:
        return gains.compute_gains(conform(scores))
    except gains.NoBaseRowsError as error:
        raise MissingInputError(str(error)) from error
