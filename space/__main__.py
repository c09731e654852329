"""``python -m space``: run the leaderboard Space locally.

Results come from a Hub dataset repo (--results org/name, --endpoint, --revision) or a local folder in
the published layout (--results path/to/folder); environment variables SPACE_RESULTS_REPO,
SPACE_RESULTS_REVISION, SPACE_RESULTS_PATH and HF_ENDPOINT set the same. A private repo needs HF_TOKEN in
the environment (never on the command line).

Examples:
  python -m space --results outputs/release/results
  python -m space --results my-org/massive-sft-results --revision main --port 7861
  HF_ENDPOINT=http://127.0.0.1:8900 python -m space --results local/massive-sft-results
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from space.config import SpaceConfig


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    defaults = SpaceConfig.from_env()
    parser = argparse.ArgumentParser(
        prog="python -m space", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--results",
        help="local results folder / parquet file, or a Hub dataset repo id "
        f"(default: {defaults.repo or defaults.local_path or 'none'})",
    )
    parser.add_argument("--endpoint", default=defaults.endpoint, help="Hub endpoint (default: %(default)s)")
    parser.add_argument("--revision", default=defaults.revision, help="revision of the results repo")
    parser.add_argument(
        "--fallback",
        type=Path,
        default=defaults.local_path,
        help="local results folder used when the Hub cannot be reached",
    )
    parser.add_argument("--host", default=defaults.host, help="interface to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=defaults.port, help="port (default: %(default)s)")
    parser.add_argument(
        "--page-size",
        type=int,
        default=defaults.page_size,
        help="rows per page of the table; the CSV download has all (default: %(default)s)",
    )
    parser.add_argument("--title", default=defaults.title, help="page title (default: %(default)s)")
    parser.add_argument(
        "--weights-url",
        default=defaults.weights_url,
        help="link for models without a Hub repo (the release config's external_weights_url)",
    )
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> SpaceConfig:
    base = SpaceConfig.from_env()
    config = dataclasses.replace(
        base,
        endpoint=args.endpoint.rstrip("/"),
        revision=args.revision,
        local_path=args.fallback,
        host=args.host,
        port=args.port,
        page_size=args.page_size,
        title=args.title,
        weights_url=args.weights_url,
    )
    return config.with_results(args.results)


def main(argv: Sequence[str] | None = None) -> int:
    config = config_from_args(parse_args(argv))
    from space.data import ResultsStore
    from space.ui import build_app, launch

    store = ResultsStore(config)
    print(f"results: {store.results.source} ({len(store.results.leaderboard):,} models)", file=sys.stderr)
    for warning in store.results.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    launch(build_app(store), config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
