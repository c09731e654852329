"""The project's errors: one base class, so every CLI reports every expected failure the same way
(``common.cli``: one line on stderr naming the problem and the fix, exit code 2, a traceback only with
``--debug``). Library code raises the most specific subclass that fits; stages derive their own errors
from these (``GridError(ConfigError)``, ``ReleasedTableError(InputError)``...)."""

from __future__ import annotations


class MassiveSFTError(Exception):
    """An expected failure whose message says what is wrong and how to fix it."""

    exit_code = 2


class UsageError(MassiveSFTError, ValueError):
    """A command line that cannot be used: an unknown option, a bad value, a missing argument."""


class ConfigError(UsageError):
    """A configuration (a ``--config`` file, a ``--set`` override, a recipe) that cannot be used."""


class InputError(MassiveSFTError, ValueError):
    """An input file or folder that is missing, unreadable, damaged or of the wrong shape."""


class ServiceError(MassiveSFTError, RuntimeError):
    """A service the command depends on (the Hub, a cluster) refused or failed the work."""


class StepFailed(MassiveSFTError, RuntimeError):
    """A step that ran and failed; it has reported the details itself."""

    exit_code = 1
