"""``python -m release``: publish the study to the Hugging Face Hub, or serve a local Hub for staging."""

import sys

from common.cli import run_subcommands

COMMANDS = {
    "publish": ("release.publish", "publish models, cards, the results dataset and the Space (idempotent)"),
    "localhub": ("localhub", "serve a local Hub-compatible server for staging and tests"),
}


def main(argv: list[str] | None = None) -> int:
    return run_subcommands("python -m release", __doc__, COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
