"""Test-wide setup. The Hub endpoint is pinned to a local port *before* anything imports
huggingface_hub (it reads HF_ENDPOINT at import time), so no test can reach the real Hub."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


HUB_PORT = _free_port()
_HF_HOME = tempfile.mkdtemp(prefix="massive-sft-hf-home-")
os.environ.update(
    {
        "HF_ENDPOINT": f"http://127.0.0.1:{HUB_PORT}",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HOME": _HF_HOME,
        "TOKENIZERS_PARALLELISM": "false",
        "WANDB_DISABLED": "true",
        "DO_NOT_TRACK": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
)
os.environ.pop("HF_TOKEN", None)

REPO_ROOT = Path(__file__).resolve().parents[1]
RELEASED_TABLE = REPO_ROOT.parent / "shared" / "data" / "massive-sft" / "evaluation_result.csv"


@pytest.fixture(scope="session")
def released_table() -> Path:
    if not RELEASED_TABLE.exists():
        pytest.fail(f"the released results table is expected at {RELEASED_TABLE} (../shared beside the repo)")
    return RELEASED_TABLE


@pytest.fixture(scope="session")
def released_report(released_table: Path, tmp_path_factory: pytest.TempPathFactory):
    """The analysis report on the released table, built once per session: (Report, out folder,
    seconds it took, the importer's result)."""
    import time

    from analysis.report import Inputs, build_report
    from evaluation.importer import import_released

    imported = import_released(released_table)
    out = tmp_path_factory.mktemp("released-report")
    started = time.perf_counter()
    report = build_report(Inputs(scores=imported.scores, quality=imported.findings), out)
    return report, out, time.perf_counter() - started, imported


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer Llama with its own BPE tokenizer (built once per session)."""
    from training.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama", architecture="llama")


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-qwen2", architecture="qwen2", seed=1)


@pytest.fixture(scope="session")
def local_hub(tmp_path_factory: pytest.TempPathFactory):
    """The local Hub-compatible server on HUB_PORT (where HF_ENDPOINT points), one per session.
    Yields a ``localhub.LocalHubHandle``: ``.endpoint``, ``.token``, ``.set_faults()``..."""
    from localhub import serve_in_background

    with serve_in_background(tmp_path_factory.mktemp("localhub"), port=HUB_PORT) as handle:
        yield handle


@pytest.fixture
def clean_faults(local_hub):
    """``local_hub`` for a test that injects faults: they are removed when the test ends."""
    local_hub.reset_faults()
    yield local_hub
    local_hub.reset_faults()


@pytest.fixture(scope="session")
def release_root(tmp_path_factory: pytest.TempPathFactory, tiny_llama: Path) -> Path:
    """An output root as training + evaluation leave it (release tests): a tiny base model, one full and
    one LoRA run with 2 kept epochs each, and scores for all of them. Copy it before changing it."""
    from tests.release_fixtures import build_root, make_job

    jobs = [make_job("tiny-llama", "demo_arithmetic", "full"), make_job("tiny-llama", "demo_facts", "lora")]
    return build_root(tmp_path_factory.mktemp("release") / "root", tiny_llama, jobs)


SLURM_LOCAL = REPO_ROOT / "scripts" / "slurm-local.sh"


@pytest.fixture(scope="session")
def slurm_cluster():
    """The real single-node Slurm cluster of scripts/slurm-local.sh (root needed), started if it is not
    running and stopped again at the end of the session if this fixture started it."""
    import subprocess

    running = subprocess.run(["bash", str(SLURM_LOCAL), "status"], capture_output=True).returncode == 0
    if not running:
        started = subprocess.run(
            ["bash", str(SLURM_LOCAL), "start"], capture_output=True, text=True, timeout=300
        )
        if started.returncode != 0:
            pytest.fail(f"the local Slurm cluster did not start:\n{started.stdout}\n{started.stderr}")
    yield
    if not running:
        subprocess.run(["bash", str(SLURM_LOCAL), "stop"], capture_output=True, timeout=120)
