"""Pieces shared by every stage: the paper's catalog, the results schema, atomic file writes."""
