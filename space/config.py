"""Where the Space reads its results from. One place: CLI flags override environment variables,
which override the defaults. A token is never part of the config: huggingface_hub reads ``HF_TOKEN``
itself when a private dataset needs one, and nothing here logs or shows it."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_PORT = 7860
# Rows per page of the table (every row is reachable by paging; the CSV has all matching rows).
DEFAULT_PAGE_SIZE = 25
DEFAULT_TITLE = "Massive SFT leaderboard"
# Submissions a submitter (a model repo's namespace) may make per day (space/submit.py).
DEFAULT_SUBMIT_LIMIT = 5


@dataclass(frozen=True)
class SpaceConfig:
    repo: str | None = None  # results dataset repo on the Hub ("org/massive-sft-results")
    revision: str | None = None  # branch, tag or commit of that repo
    endpoint: str = DEFAULT_ENDPOINT
    local_path: Path | None = None  # a local results folder (or a parquet file): used when no repo
    # is set, or as the fallback when the Hub cannot be reached
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    page_size: int = DEFAULT_PAGE_SIZE
    # The page's title: the release stage sets the release config's collection title (SPACE_TITLE).
    title: str = DEFAULT_TITLE
    # Where models without a Hub repo link to: the release config's ``external_weights_url`` for the
    # authors' released study (their weights are hosted outside the Hub).
    weights_url: str | None = None
    # The requests dataset the Submit tab writes to (None: submissions are closed), and its rate limit.
    requests_repo: str | None = None
    submit_limit: int = DEFAULT_SUBMIT_LIMIT

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> SpaceConfig:
        env = os.environ if environ is None else environ
        local = env.get("SPACE_RESULTS_PATH")
        return cls(
            repo=env.get("SPACE_RESULTS_REPO") or None,
            revision=env.get("SPACE_RESULTS_REVISION") or None,
            endpoint=(env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/"),
            local_path=Path(local) if local else None,
            host=env.get("GRADIO_SERVER_NAME", "127.0.0.1"),
            port=int(env.get("GRADIO_SERVER_PORT", DEFAULT_PORT)),
            page_size=int(env.get("SPACE_PAGE_SIZE", DEFAULT_PAGE_SIZE)),
            title=env.get("SPACE_TITLE") or DEFAULT_TITLE,
            weights_url=env.get("SPACE_WEIGHTS_URL") or None,
            requests_repo=env.get("SPACE_REQUESTS_REPO") or None,
            submit_limit=int(env.get("SPACE_SUBMIT_LIMIT", DEFAULT_SUBMIT_LIMIT)),
        )

    def with_results(self, results: str | None) -> SpaceConfig:
        """``--results`` takes an existing local path or, otherwise, a Hub repo id."""
        if not results:
            return self
        if Path(results).exists():
            return replace(self, local_path=Path(results), repo=None)
        return replace(self, repo=results)

    def model_link(self, repo_id: str | None, revision: str | None) -> str | None:
        """Where a model lives: ``{endpoint}/{repo_id}/tree/{revision}``; a full URL is kept as is
        (the release config may point released-study rows outside the Hub)."""
        if not repo_id:
            return self.weights_url
        if repo_id.startswith(("http://", "https://")):
            return repo_id
        link = f"{self.endpoint}/{repo_id}"
        return f"{link}/tree/{revision}" if revision else link
