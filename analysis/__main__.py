"""``python -m analysis``: gains, synergies, consistency, factors, predictors, layers, model map, report,
recommendations."""

import sys

from common.cli import run_subcommands

COMMANDS = {
    "report": ("analysis.cli_report", "compute every finding and write tables, figures, report.md/html"),
    "layers": ("analysis.cli_layers", "layer-wise weight change of checkpoints against their base models"),
    "map": ("analysis.cli_map", "the model map: models placed by their log-likelihoods of a fixed text set"),
    "predict": (
        "analysis.cli_predict",
        "predict the gain of fine-tuning a base model on a dataset, before training",
    ),
    "recommend": (
        "analysis.cli_recommend",
        "which SFT dataset to train a base model on for a target benchmark",
    ),
}


def main(argv: list[str] | None = None) -> int:
    return run_subcommands("python -m analysis", __doc__, COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
