"""Published files and network answers carry no local paths: the importer's quality.json (published in
the results dataset) names the table by file name and sha256, and the local Hub's /health does not
reveal its storage root."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import httpx

from common.cli import run_command
from evaluation import cli_import
from evaluation.importer import public_source
from localhub import serve_in_background


def test_quality_json_names_the_table_by_file_name_and_hash(released_table: Path, tmp_path: Path) -> None:
    folder = tmp_path / "private" / "downloads"
    folder.mkdir(parents=True)
    csv = folder / "evaluation_result.csv"
    shutil.copyfile(released_table, csv)
    root = tmp_path / "root"
    argv = ["--csv", str(csv), "--root", str(root)]
    assert run_command("python -m evaluation import-released", cli_import, argv) == 0
    text = (root / "quality.json").read_text()
    assert str(tmp_path) not in text and "/private/downloads" not in text
    quality = json.loads(text)
    assert quality["source"] == "evaluation_result.csv"
    assert quality["sha256"] == hashlib.sha256(csv.read_text(encoding="utf-8").encode("utf-8")).hexdigest()


def test_urls_lose_credentials_and_queries() -> None:
    assert (
        public_source("https://user:secret@example.org:8443/t/a.csv?token=x#f")
        == "https://example.org:8443/t/a.csv"
    )
    assert public_source("https://example.org/a.csv") == "https://example.org/a.csv"
    assert public_source(Path("/home/someone/a.csv")) == "a.csv"


def test_localhub_health_does_not_reveal_its_storage_root(tmp_path: Path) -> None:
    root = tmp_path / "secret-storage"
    with serve_in_background(root) as hub:
        response = httpx.get(f"{hub.endpoint}/health", timeout=30)
    assert response.status_code == 200 and response.json()["status"] == "ok"
    assert str(root) not in response.text and str(tmp_path) not in response.text
