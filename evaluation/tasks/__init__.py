"""lm-eval task definitions: ``paper/`` (the paper suite, Hub datasets) and the prompt/scoring functions."""
