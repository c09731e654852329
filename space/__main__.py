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

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

from common.cli import run_command
from common.config import setting
from space.config import SpaceConfig
from space.data import ResultsStore
from space.ui import build_app, launch


@dataclass(frozen=True)
class Options:
    """Unset fields come from the environment (SpaceConfig.from_env), then the defaults."""

    results: str | None = setting(
        None, "local results folder / parquet file, or a Hub dataset repo id (default: SPACE_RESULTS_*)"
    )
    endpoint: str | None = setting(None, "Hub endpoint (default: HF_ENDPOINT, else huggingface.co)")
    revision: str | None = setting(None, "revision of the results repo (default: SPACE_RESULTS_REVISION)")
    fallback: Path | None = setting(
        None, "local results folder used when the Hub cannot be reached (default: SPACE_RESULTS_PATH)"
    )
    host: str | None = setting(None, "interface to bind (default: GRADIO_SERVER_NAME, else 127.0.0.1)")
    port: int | None = setting(None, "port (default: GRADIO_SERVER_PORT, else 7860)")
    page_size: int | None = setting(
        None, "rows per page of the table; the CSV download has all (default: SPACE_PAGE_SIZE, else 25)"
    )
    title: str | None = setting(None, "page title (default: SPACE_TITLE, else 'Massive SFT leaderboard')")
    weights_url: str | None = setting(
        None, "link for models without a Hub repo (the release config's external_weights_url)"
    )
    requests: str | None = setting(
        None, "requests dataset repo the Submit tab writes to (default: SPACE_REQUESTS_REPO; none: closed)"
    )
    submit_limit: int | None = setting(
        None, "submissions per submitter and day (default: SPACE_SUBMIT_LIMIT, else 5)"
    )


def space_config(options: Options) -> SpaceConfig:
    """The environment's config with the given options on top."""
    base = SpaceConfig.from_env()
    given = {
        "endpoint": options.endpoint.rstrip("/") if options.endpoint else None,
        "revision": options.revision,
        "local_path": options.fallback,
        "host": options.host,
        "port": options.port,
        "page_size": options.page_size,
        "title": options.title,
        "weights_url": options.weights_url,
        "requests_repo": options.requests,
        "submit_limit": options.submit_limit,
    }
    config = dataclasses.replace(base, **{k: v for k, v in given.items() if v is not None})
    return config.with_results(options.results)


def main(options: Options) -> int:
    config = space_config(options)
    store = ResultsStore(config)
    print(f"results: {store.results.source} ({len(store.results.leaderboard):,} models)", file=sys.stderr)
    for warning in store.results.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    launch(build_app(store), config)
    return 0


if __name__ == "__main__":
    sys.exit(run_command("python -m space", sys.modules[__name__]))
