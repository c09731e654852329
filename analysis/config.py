"""Every setting of the analysis stage, in one place. The CLIs take any of them as ``--field-name``, in
a ``--config`` file or as ``--set field=value``; each field's help text is shown by
``python -m analysis report --help``."""

from __future__ import annotations

from dataclasses import dataclass

from common.config import setting as _setting


@dataclass(frozen=True)
class AnalysisConfig:
    main_data_size: int = _setting(
        1000,
        "data size of the main condition (synergy matrices); without runs of that size the smallest "
        "single-dataset size is used",
    )
    main_schedule: str = _setting("cosine", "learning-rate schedule of the main condition")
    main_epoch: int | None = _setting(None, "epoch of the main condition (default: the largest present)")
    min_models: int = _setting(3, "fewest models for a correlation of a cell or benchmark (else NaN)")
    min_datasets: int = _setting(
        4, "fewest datasets in one base model for a within-model predictor correlation"
    )
    perplexity_scope: str = _setting(
        "response", "perplexity used as predictor: response tokens or full sample"
    )
    ngram: int = _setting(3, "word n-gram size of the surface-overlap predictor")
    max_texts: int = _setting(200, "texts per side embedded for the embedding-similarity predictor")
    embedding_batch: int = _setting(32, "batch size of the sentence-embedding model")
    depth_bins: int = _setting(10, "normalized-depth bins of the layer analysis")
    predictor_method: str = _setting("full", "method whose main-condition gains feed predictors and predict")
    interval: float = _setting(0.9, "coverage of predict's uncertainty interval")
    figure_dpi: int = _setting(110, "resolution of the PNG figures")


DEFAULT_CONFIG = AnalysisConfig()
