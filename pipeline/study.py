"""``python -m pipeline study``: the real study. Imports the authors' released results table (1,027
evaluated models), builds the analysis report, and stages (or, with HF_TOKEN and --endpoint,
publishes) the results dataset, model cards pointing at the authors' weights, and the Space."""

from __future__ import annotations

import argparse
from pathlib import Path

from common.paths import RELEASED_TABLE_URL
from pipeline.serve import add_serve_arguments, run_then_serve
from pipeline.stages import Stage, staging_stage


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--csv", default=RELEASED_TABLE_URL, help="the released table: a local path or an http(s) URL"
    )
    parser.add_argument("--root", type=Path, default=Path("outputs/study"), help="output root of every stage")
    parser.add_argument("--release-config", default="study", help="release config (configs/release/)")
    add_serve_arguments(parser)


def study_stages(args: argparse.Namespace) -> list[Stage]:
    root = str(args.root)
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
                f"{root}/scores.parquet",
                "--out",
                f"{root}/report",
                "--quality",
                f"{root}/quality.json",
            ),
        ),
        staging_stage(root, args.release_config, serve=not args.no_serve),
    ]


def main(args: argparse.Namespace) -> int:
    return run_then_serve(study_stages(args), args)
