"""``python -m localhub --root DIR [--port P] ...``: the same as ``python -m release localhub``."""

import argparse
import sys

from localhub import configure, main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m localhub", description="Serve a local Hugging Face Hub-compatible server."
    )
    configure(parser)
    sys.exit(main(parser.parse_args()))
