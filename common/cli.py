"""Subcommand CLIs for the stages. Each subcommand lives in its own module exposing
``configure(parser)`` and ``main(args) -> int``; modules are imported only when their subcommand
runs, so ``--help`` stays fast and one stage's heavy imports never slow another's."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps descriptions' line breaks and shows defaults, unless the help text already states one
    or there is none worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text.lower() or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def run_subcommands(
    prog: str, description: str, commands: dict[str, tuple[str, str]], argv: Sequence[str] | None = None
) -> int:
    """``commands`` maps a subcommand name to (module path, one-line help)."""
    parser = argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_path, help_text) in commands.items():
        sub = subparsers.add_parser(
            name, help=help_text, description=help_text, formatter_class=HelpFormatter
        )
        if name == chosen:
            importlib.import_module(module_path).configure(sub)
    args = parser.parse_args(argv)
    module = importlib.import_module(commands[args.command][0])
    try:
        return int(module.main(args) or 0)
    except BrokenPipeError:  # `... | head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
