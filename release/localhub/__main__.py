"""``python -m release.localhub --root DIR [--port P] ...``: the same as ``python -m release localhub``."""

import argparse
import sys

from release.localhub import configure, main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m release.localhub", description="Serve a local Hugging Face Hub-compatible server."
    )
    configure(parser)
    sys.exit(main(parser.parse_args()))
