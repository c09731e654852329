"""``python -m pipeline study``: the real study. Imports the authors' released results table (1,027
evaluated models), builds the analysis report, and stages (or, with HF_TOKEN and --endpoint,
publishes) the results dataset, model cards pointing at the authors' weights, and the Space."""

from __future__ import annotations

import argparse
from pathlib import Path

from common.paths import RELEASED_TABLE_URL
from pipeline.serve import serve
from pipeline.stages import Stage, StageFailed, run_stages


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csv", default=RELEASED_TABLE_URL,
                        help="the released table: a local path or an http(s) URL")
    parser.add_argument("--root", type=Path, default=Path("outputs/study"), help="output root of every stage")
    parser.add_argument("--release-config", default="study", help="release config (configs/release/)")
    parser.add_argument("--no-serve", action="store_true",
                        help="stop after staging the release instead of serving the Hub and the Space")
    parser.add_argument("--hub-port", type=int, default=None, help="port of the staging Hub (default: free)")
    parser.add_argument("--space-port", type=int, default=None, help="port of the Space (default: free)")


def study_stages(args: argparse.Namespace) -> list[Stage]:
    root = str(args.root)
    return [
        Stage("import the released table", ("evaluation", "import-released", "--csv", args.csv,
                                             "--root", root)),
        Stage("analysis report", ("analysis", "report", "--scores", f"{root}/scores.parquet",
                                  "--out", f"{root}/report", "--quality", f"{root}/quality.json")),
        Stage("stage the release", ("release.publish", "--root", root, "--config", args.release_config,
                                    "--no-progress")),
    ]


def main(args: argparse.Namespace) -> int:
    from release.config import load_config

    results_repo = load_config(args.release_config).results_repo()
    try:
        run_stages(study_stages(args))
    except StageFailed as error:
        print(f"\nerror: {error}")
        return 1
    if not args.no_serve:
        serve(args.root / "hub", results_repo, args.hub_port, args.space_port)
    return 0
