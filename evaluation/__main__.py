"""``python -m evaluation``: benchmark models, measure training-data perplexity, import released results."""

import sys

from common.cli import run_subcommands

COMMANDS = {
    "run": ("evaluation.cli_run", "evaluate base models and kept checkpoints on a benchmark suite (lm-eval)"),
    "judge": ("evaluation.cli_judge", "MT-Bench and AlpacaEval 2 scored by an OpenAI-compatible judge"),
    "perplexity": ("evaluation.cli_perplexity", "perplexity of prepared training data under base models"),
    "queue": (
        "evaluation.cli_queue",
        "evaluate the models submitted through the Space and publish their scores",
    ),
    "import-released": ("evaluation.cli_import", "convert the authors' released results table to our schema"),
}


def main(argv: list[str] | None = None) -> int:
    return run_subcommands("python -m evaluation", __doc__, COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
