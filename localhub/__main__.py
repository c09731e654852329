"""``python -m localhub --root DIR [--port P] ...``: the same as ``python -m release localhub``."""

import sys

import localhub
from common.cli import run_command

if __name__ == "__main__":
    sys.exit(run_command("python -m localhub", localhub))
