"""Library calls must leave process-wide torch state as they found it: the stages share processes in
tests and notebooks, and a switched-off autograd silently breaks the next training run."""

from __future__ import annotations

import torch

from analysis.similarity import embed


def test_embedding_leaves_autograd_on() -> None:
    vectors = embed(["###Question: What is 3 plus 4?", "###Answer: 7"])
    assert vectors.shape == (2, 384)
    assert torch.is_grad_enabled()
    assert torch.ones(1, requires_grad=True).mul(2).requires_grad
