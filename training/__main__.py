"""``python -m training``: plan, prepare and run supervised fine-tuning grids."""

import sys

from common.cli import run_subcommands

COMMANDS = {
    "plan": ("training.cli_plan", "show a grid's jobs as a table with totals, or as JSONL"),
    "prepare": ("training.cli_prepare", "download/preprocess/subsample a grid's datasets into parquet"),
    "run": ("training.cli_run", "train a grid's jobs (local processes or Slurm), resumable"),
}


def main(argv: list[str] | None = None) -> int:
    return run_subcommands("python -m training", __doc__, COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
