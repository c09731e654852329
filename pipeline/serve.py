"""After a staged release: serve the staging Hub and the leaderboard Space, and tell people how to
use them. Both run as child processes and stop together on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from common.config import setting
from common.io import read_json
from common.layout import OutputRoot, default_root
from localhub import DEFAULT_TOKEN, free_port
from pipeline.stages import ONLINE_FOR_LOOPBACK, Stage, run_stages
from release.config import load_config
from release.usage import download_instructions


def _wait_until_up(url: str, process: subprocess.Popen, what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before answering at {url}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not answer at {url} within {timeout_s:.0f} s")


def usage_text(hub_url: str, space_url: str, results_repo: str, root: OutputRoot) -> str:
    report = publish_report(root)
    lines = [
        "",
        "The release is staged and served:",
        f"  leaderboard Space : {space_url}",
        f"  staging Hub       : {hub_url}   (results dataset: {hub_url}/datasets/{results_repo})",
        *staged_pages(hub_url, report),
        "",
        *download_instructions(hub_url, results_repo, a_fine_tuned_model(report)),
        "",
        "Press Ctrl-C to stop both servers.",
    ]
    return "\n".join(lines)


def publish_report(root: OutputRoot) -> dict:
    """The publisher's report of the staging (empty when there is none)."""
    report = root.release_work_dir / "last_publish.json"
    return read_json(report) if report.exists() else {}


def staged_pages(hub_url: str, report: dict) -> list[str]:
    """The staging Hub's pages of the staged Space repo and of the release's collection."""
    spaces = [r["repo_id"] for r in report.get("repos", []) if r["kind"] == "space"]
    lines = [f"  Space repo        : {hub_url}/spaces/{repo}" for repo in spaces]
    if report.get("collection"):
        lines.append(f"  collection        : {hub_url}/collections/{report['collection']}")
    return lines


def a_fine_tuned_model(report: dict) -> tuple[str, str] | None:
    """(repo, epoch branch) of a staged fine-tuned model, from the publisher's report of the staging."""
    for repo in report.get("repos", []):
        epochs = sorted(r["revision"] for r in repo["revisions"] if r["revision"].startswith("epoch-"))
        if repo["kind"] == "model" and epochs:
            return repo["repo_id"], epochs[0]
    return None


@dataclass(frozen=True)
class PipelineOptions:
    """What every pipeline shares: where outputs go, which release config stages them, and serving."""

    root: Path = setting(default_root(), "output root of every stage")
    release_config: str = setting("demo", "release config (configs/release/)")
    no_serve: bool = setting(False, "stop after staging the release instead of serving the Hub and the Space")
    hub_port: int | None = setting(None, "port of the staging Hub (default: a free one)")
    space_port: int | None = setting(None, "port of the Space (default: a free one)")


def release_stage(options: PipelineOptions) -> Stage:
    """Stage the release into ROOT/hub. When the pipeline serves it afterwards, the pipeline prints the
    download instructions itself (with the ports it serves on), so the publisher prints none."""
    quiet = () if options.no_serve else ("--no-instructions",)
    return Stage(
        "stage the release",
        (
            "release.publish",
            "--root",
            str(options.root),
            "--config",
            options.release_config,
            "--stage",
            *quiet,
        ),
        env=ONLINE_FOR_LOOPBACK,
    )


def run_then_serve(stages: list[Stage], options: PipelineOptions) -> int:
    """Run the stages (a failure raises StageFailed); unless ``no_serve``, then serve the staged
    release until Ctrl-C."""
    results_repo = load_config(options.release_config).results_repo()
    run_stages(stages)
    if not options.no_serve:
        serve(OutputRoot(options.root), results_repo, options.hub_port, options.space_port)
    return 0


def serve(root: OutputRoot, results_repo: str, hub_port: int | None, space_port: int | None) -> None:
    """Serve ``<root>/hub`` and the Space reading it until Ctrl-C or SIGTERM."""
    hub_port = hub_port or free_port()
    space_port = space_port or free_port()
    hub_url = f"http://127.0.0.1:{hub_port}"
    space_url = f"http://127.0.0.1:{space_port}"
    # A terminated pipeline must take its servers with it: SIGTERM unwinds through the `finally` below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    hub = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "localhub",
            "--root",
            str(root.hub_dir),
            "--port",
            str(hub_port),
            "--token",
            DEFAULT_TOKEN,
            "--log-level",
            "warning",
        ]
    )
    space = None
    try:
        _wait_until_up(f"{hub_url}/api/whoami-v2", hub, "the staging Hub")
        space = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "space",
                "--results",
                results_repo,
                "--endpoint",
                hub_url,
                "--port",
                str(space_port),
            ],
            env={**os.environ, **ONLINE_FOR_LOOPBACK},
        )
        _wait_until_up(space_url, space, "the leaderboard Space")
        print(usage_text(hub_url, space_url, results_repo, root), flush=True)
        while hub.poll() is None and space.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping the servers", flush=True)
    finally:
        for process in (space, hub):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
