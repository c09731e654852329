"""``python -m pipeline study``: the real study. Imports the authors' released results table (1,027
evaluated models), builds the analysis report, and stages (or, with HF_TOKEN and --endpoint,
publishes) the results dataset, model cards pointing at the authors' weights, and the Space."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.config import setting
from common.layout import OutputRoot, default_root
from common.paths import RELEASED_TABLE_URL
from pipeline.serve import PipelineOptions, release_stage, run_then_serve
from pipeline.stages import Stage


@dataclass(frozen=True)
class Options(PipelineOptions):
    root: Path = setting(default_root("study"), "output root of every stage")
    release_config: str = setting("study", "release config (configs/release/)")
    csv: str = setting(RELEASED_TABLE_URL, "the released table: a local path or an http(s) URL")


def study_stages(options: Options) -> list[Stage]:
    layout = OutputRoot(options.root)
    root = str(layout)
    return [
        Stage(
            "import the released table",
            ("evaluation", "import-released", "--csv", options.csv, "--root", root),
        ),
        Stage(
            "analysis report",
            (
                "analysis",
                "report",
                "--scores",
                str(layout.scores),
                "--out",
                str(layout.report_dir),
                "--quality",
                str(layout.quality),
            ),
        ),
        release_stage(options),
    ]


def main(options: Options) -> int:
    return run_then_serve(study_stages(options), options)
