"""``python -m pipeline``: run every stage in order, from nothing to a browsable release.

demo   the embedded default: demo data, tiny base models, training, evaluation, perplexity,
       layer statistics, model map, analysis report, staging release on the local Hub, leaderboard Space
study  the real study: import the authors' released table, analyse it, stage or publish the
       results dataset, report, model cards and leaderboard Space for the 1,027 released models
"""

import sys

from common.cli import run_subcommands

COMMANDS = {
    "demo": ("pipeline.demo", "run the whole pipeline on the demo grid (CPU, offline, no token)"),
    "study": ("pipeline.study", "import the authors' released results and publish them with the Space"),
}


def main(argv: list[str] | None = None) -> int:
    return run_subcommands("python -m pipeline", __doc__, COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
