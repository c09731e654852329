"""Default locations. Every one of them can be overridden from the CLI; the environment variable
``MASSIVE_SFT_CONFIGS`` moves the recipe folder for installs outside a source checkout."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def configs_dir() -> Path:
    return Path(os.environ.get("MASSIVE_SFT_CONFIGS", PROJECT_ROOT / "configs"))


SHARED_RELEASED_TABLE = PROJECT_ROOT.parent / "shared" / "data" / "massive-sft" / "evaluation_result.csv"
RELEASED_TABLE_URL = "https://raw.githubusercontent.com/llm-jp/massive-sft/main/evaluation_result.csv"
