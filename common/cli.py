"""The command-line shell shared by every stage. A command is a module with an ``Options`` dataclass
(``common.config``: typed fields with their help, read from flags, ``--config FILE.yaml`` and
``--set key=value``) and ``main(options) -> int``; optionally ``CONFIGS`` (a folder whose YAML files
``--config NAME`` may name) and ``DEFAULT_CONFIG`` (the one used without ``--config``).

Every command reports every error the same way: one line ``error: ...`` on stderr naming the problem
and the fix, exit code 2 (1 for a step that ran and failed), no traceback unless ``--debug`` (or
``MASSIVE_SFT_DEBUG=1``). Modules are imported only when their subcommand runs, so ``--help`` stays fast
and one stage's heavy imports never slow another's."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

from common.config import add_options, options_from_args
from common.errors import MassiveSFTError, UsageError


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions' line breaks (the flags' help states defaults itself)."""


class Parser(argparse.ArgumentParser):
    """argparse whose mistakes are a UsageError (one line, exit 2) instead of usage text and exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _parser(prog: str, description: str | None) -> Parser:
    return Parser(prog=prog, description=description, formatter_class=HelpFormatter)


def configure_command(parser: argparse.ArgumentParser, module: ModuleType) -> None:
    """The flags of a command module: its Options' fields plus --config, --set, --debug."""
    if module.__doc__:
        parser.description = module.__doc__
    parser.epilog = getattr(module, "EPILOG", None)
    parser.formatter_class = HelpFormatter
    configs = getattr(module, "CONFIGS", None)
    add_options(parser, module.Options, Path(configs) if configs else None)
    parser.set_defaults(_default_config=getattr(module, "DEFAULT_CONFIG", None))


def options_of(args: argparse.Namespace) -> Any:
    if "config" not in args and args._default_config:
        args.config = Path(args._default_config)
    return options_from_args(args)


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text[len("error: ") :] if text.startswith("error: ") else text


def debug_requested(argv: Sequence[str]) -> bool:
    return "--debug" in argv or os.environ.get("MASSIVE_SFT_DEBUG", "") not in ("", "0")


def report_errors(argv: Sequence[str], call: Callable[[], int | None]) -> int:
    """Run ``call`` and turn every error into one line on stderr and an exit code."""
    debug = debug_requested(argv)
    try:
        return int(call() or 0)
    except BrokenPipeError:  # `... | head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        if debug:
            raise
        print("error: interrupted", file=sys.stderr)
        return 130
    except (MassiveSFTError, OSError) as error:
        if debug:
            raise
        print(f"error: {one_line(error)}", file=sys.stderr)
        return getattr(error, "exit_code", 2)
    except Exception as error:  # noqa: BLE001 - a bug still gets one line; --debug shows where
        if debug:
            raise
        print(
            f"error: unexpected {type(error).__name__}: {one_line(error)} "
            "(a bug: rerun with --debug for the traceback and report it)",
            file=sys.stderr,
        )
        return 1


def run_command(prog: str, module: ModuleType, argv: Sequence[str] | None = None) -> int:
    """A command without subcommands (``python -m space``, ``python -m localhub``)."""
    argv = list(sys.argv[1:] if argv is None else argv)

    def call() -> int | None:
        parser = _parser(prog, module.__doc__)
        configure_command(parser, module)
        return module.main(options_of(parser.parse_args(argv)))

    return report_errors(argv, call)


def run_subcommands(
    prog: str, description: str, commands: dict[str, tuple[str, str]], argv: Sequence[str] | None = None
) -> int:
    """``commands`` maps a subcommand name to (module path, one-line help)."""
    argv = list(sys.argv[1:] if argv is None else argv)

    def call() -> int | None:
        parser = _parser(prog, description)
        parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
        subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
        chosen = next((a for a in argv if not a.startswith("-")), None)
        module = None
        for name, (module_path, help_text) in commands.items():
            sub = subparsers.add_parser(name, help=help_text, description=help_text)
            if name == chosen:
                module = importlib.import_module(module_path)
                configure_command(sub, module)
        args, unknown = parser.parse_known_args(argv)
        if unknown:
            raise UsageError(
                f"unrecognized arguments: {' '.join(unknown)} (see `{prog} {args.command} --help`)"
            )
        return module.main(options_of(args))

    return report_errors(argv, call)


def parse_options(module: ModuleType, argv: Sequence[str]) -> Any:
    """The typed options a command would get from ``argv`` (for tests and for programs that call a
    command's ``main`` in-process)."""
    parser = _parser(module.__name__, None)
    configure_command(parser, module)
    return options_of(parser.parse_args(list(argv)))
