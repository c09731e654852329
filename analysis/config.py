"""Every setting of the analysis stage, in one place. The CLI overrides any of them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AnalysisConfig:
    # The paper's main condition for synergy matrices: 1k samples, final epoch, cosine schedule.
    # When the data has no run of that size (e.g. a demo grid), the smallest single-dataset size is used.
    main_data_size: int = 1000
    main_schedule: str = "cosine"
    # None: the largest epoch present in the main condition (10 in the paper).
    main_epoch: int | None = None
    # Fewer models than this: no correlation is computed for that cell/benchmark (too noisy to report).
    min_models: int = 3
    # Fewer datasets than this inside one base model: no within-model predictor correlation.
    min_datasets: int = 4
    # Perplexity scope used as predictor ("response": only answer tokens; "full": the whole sample).
    perplexity_scope: str = "response"
    # Surface similarity: word n-gram size and how many texts per side are embedded.
    ngram: int = 3
    max_texts: int = 200
    embedding_batch: int = 32
    # Layer analysis: number of normalized-depth bins.
    depth_bins: int = 10
    # Method whose main-condition gains feed predictors and the predict command.
    predictor_method: str = "full"
    # Prediction interval coverage (residual quantiles of the leave-one-dataset-out errors).
    interval: float = 0.9
    figure_dpi: int = 110


DEFAULT_CONFIG = AnalysisConfig()
