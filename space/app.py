"""Hugging Face Spaces entry point (``app_file: space/app.py``). Configured by environment variables:
SPACE_RESULTS_REPO, SPACE_RESULTS_REVISION, HF_ENDPOINT, SPACE_RESULTS_PATH (see docs/space.md)."""

from __future__ import annotations

import sys
from pathlib import Path

# Spaces run this file as a script: make the project packages (space, common) importable.
_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from space.config import SpaceConfig  # noqa: E402
from space.data import ResultsStore  # noqa: E402
from space.ui import build_app, launch  # noqa: E402

config = SpaceConfig.from_env()
demo = build_app(ResultsStore(config))

if __name__ == "__main__":
    launch(demo, config)
