"""`python -m localhub` in team mode: users and tokens come from a file named by an environment variable
(never from the command line, where `ps` shows them); a bad tokens file is one line on stderr, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from localhub import free_port
from localhub.accounts import TOKENS_FILE_ENV
from tests.localhub_support import ALICE, BOB, TEAM, wait_until_healthy

PROJECT = Path(__file__).resolve().parents[1]


def localhub_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "localhub", *args]


def test_team_mode_from_a_tokens_file_named_by_the_environment(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(json.dumps(TEAM))
    tokens.chmod(0o600)
    port = free_port()
    env = {**os.environ, TOKENS_FILE_ENV: str(tokens), "PYTHONPATH": str(PROJECT)}
    proc = subprocess.Popen(
        localhub_cli("--root", str(tmp_path / "hub"), "--port", str(port), "--log-level", "warning"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=PROJECT,
        env=env,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(endpoint)
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode()
        assert ALICE not in cmdline and BOB not in cmdline  # what `ps` shows
        alice, bob = HfApi(endpoint=endpoint, token=ALICE), HfApi(endpoint=endpoint, token=BOB)
        assert alice.whoami()["name"] == "alice"
        repo_id = alice.create_repo("alice/cli-model").repo_id
        with pytest.raises(HfHubHTTPError) as err:
            bob.delete_repo(repo_id)
        assert err.value.response.status_code == 403
        # The default staging token means nothing in team mode.
        assert (
            httpx.get(
                f"{endpoint}/api/whoami-v2", headers={"authorization": "Bearer hf_localhub_staging_token"}
            ).status_code
            == 401
        )
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
    assert "team mode, 2 user(s)" in output and ALICE not in output and BOB not in output


BAD_FILES = {
    "missing": (None, "cannot read"),
    "yaml": ("users: [", "not valid YAML"),
    "shape": ("[1, 2]", "mapping"),
    "unknown key": ("users: {a: {tokens: [hf_aaaaaaaa]}}\nadmins: []", "unknown key"),
    "short token": ("users: {a: {tokens: [x]}}", "at least 8"),
    "role": ("users: {a: {tokens: [{token: hf_aaaaaaaa, role: owner}]}}", "role"),
    "member": ("users: {a: {tokens: [hf_aaaaaaaa]}}\norgs: {lab: [zed]}", "'zed'"),
    "user name": ("users: {'a b': {tokens: [hf_aaaaaaaa]}}", "not a valid Hub namespace"),
    "duplicate": ("users: {a: {tokens: [hf_aaaaaaaa]}, b: {tokens: [hf_aaaaaaaa]}}", "twice"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_tokens_file_is_one_line_on_stderr_and_exit_2(tmp_path: Path, case: str) -> None:
    content, expected = BAD_FILES[case]
    tokens = tmp_path / "tokens.yaml"
    if content is not None:
        tokens.write_text(content)
    result = subprocess.run(
        localhub_cli("--root", str(tmp_path / "hub"), "--tokens-file", str(tokens)),
        capture_output=True,
        text=True,
        cwd=PROJECT,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in result.stderr, result.stderr


def test_tokens_file_and_token_together_are_refused(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(json.dumps(TEAM))
    result = subprocess.run(
        localhub_cli("--root", str(tmp_path), "--tokens-file", str(tokens), "--token", "hf_xxxxxxxxx"),
        capture_output=True,
        text=True,
        cwd=PROJECT,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
        timeout=120,
    )
    assert result.returncode == 2 and "not both" in result.stderr
