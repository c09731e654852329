"""``python -m pipeline study``: the real study. Imports the authors' released results table (1,027
evaluated models), builds the analysis report, and stages (or, with HF_TOKEN and --endpoint,
publishes) the results dataset, model cards pointing at the authors' weights, and the Space."""

from __future__ import annotations

import argparse
from pathlib import Path

from common.layout import OutputRoot, default_root
from common.paths import RELEASED_TABLE_URL
from pipeline.serve import add_serve_arguments, run_then_serve
from pipeline.stages import Stage


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--csv", default=RELEASED_TABLE_URL, help="the released table: a local path or an http(s) URL"
    )
    parser.add_argument("--root", type=Path, default=default_root("study"), help="output root of every stage")
    parser.add_argument("--release-config", default="study", help="release config (configs/release/)")
    add_serve_arguments(parser)


def study_stages(args: argparse.Namespace) -> list[Stage]:
    layout = OutputRoot(args.root)
    root = str(layout)
    return [
        Stage(
            "import the released table", ("evaluation", "import-released", "--csv", args.csv, "--root", root)
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
        Stage(
            "stage the release",
            ("release.publish", "--root", root, "--config", args.release_config, "--stage", "--no-progress"),
        ),
    ]


def main(args: argparse.Namespace) -> int:
    return run_then_serve(study_stages(args), args)
