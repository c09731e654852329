"""Run untrusted generated code (HumanEval / MBPP completions) so that it cannot hurt the host.

Layers, outermost first:

1. A separate process, ``python -I -B`` (isolated mode: no user site, no ``PYTHON*`` variables, no
   sitecustomize; no bytecode written), in its own session so the whole process group can be killed.
2. A wall-clock limit enforced by the parent (the group is SIGKILLed), plus ``RLIMIT_CPU``, ``RLIMIT_AS``
   (memory), ``RLIMIT_FSIZE`` (file size) and ``RLIMIT_NPROC`` set in ``preexec_fn``.
3. No network: the child runs inside ``unshare --user --net`` (an empty network namespace: not even a
   route to the host) when the kernel allows unprivileged namespaces; in any case the prelude refuses
   to create internet sockets.
4. A prelude installed *before* the program runs registers a ``sys.addaudithook`` hook (hooks cannot be
   removed from Python code) that refuses: writes, renames, deletes and mkdirs outside the scratch
   directory; new processes (``subprocess``, ``os.system``, ``os.exec*``, ``fork``); internet sockets;
   ``ctypes`` (which could bypass all of the above).
5. A fresh scratch directory as cwd and ``HOME``, deleted afterwards; an environment with nothing but
   ``PATH`` and locale (no HF token, no credentials).

Limits (documented in docs/evaluation-run.md): this is not a kernel-level filesystem sandbox. Native
extension modules that are already importable could still write files; ``RLIMIT_NPROC`` is ignored
for root. For hostile workloads run the whole evaluation inside a container or VM as well."""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Runs inside the child before the untrusted program; {scratch!r} is filled in by the parent.
_PRELUDE = r"""
import os as _os, sys as _sys
_sys.dont_write_bytecode = True
_SCRATCH = _os.path.realpath({scratch!r})
_WRITE_FLAGS = _os.O_WRONLY | _os.O_RDWR | _os.O_CREAT | _os.O_APPEND | _os.O_TRUNC
_PATH_EVENTS = {{"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.symlink",
                 "os.link", "os.truncate", "os.utime", "shutil.rmtree", "shutil.copyfile", "shutil.move"}}
_DENIED = {{"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
           "os.forkpty", "os.kill", "os.killpg", "pty.spawn", "ctypes.dlopen", "ctypes.dlsym",
           "ctypes.cdata", "ctypes.call_function", "socket.connect", "socket.bind", "socket.sendto",
           "socket.getaddrinfo", "socket.gethostbyname", "urllib.Request"}}

def _inside(path):
    try:
        real = _os.path.realpath(_os.fsdecode(path) if not isinstance(path, int) else "")
    except Exception:
        return False
    return real == _SCRATCH or real.startswith(_SCRATCH + _os.sep)

def _guard(event, args):
    if event in _DENIED:
        raise PermissionError(f"sandbox: {{event}} is not allowed")
    if event == "socket.__new__" and len(args) > 1 and args[1] in (2, 10):  # AF_INET, AF_INET6
        raise PermissionError("sandbox: network sockets are not allowed")
    if event == "open" and len(args) > 2:
        path, mode, flags = args[0], args[1], args[2]
        writing = (mode is not None and any(c in str(mode) for c in "wax+")) or bool((flags or 0) & _WRITE_FLAGS)
        if writing and not isinstance(path, int) and not _inside(path):
            raise PermissionError(f"sandbox: writing {{path!r}} outside the scratch directory")
    elif event in _PATH_EVENTS:
        for path in args[:2]:
            if isinstance(path, (str, bytes, _os.PathLike)) and not _inside(path):
                raise PermissionError(f"sandbox: {{event}} on {{path!r}} outside the scratch directory")

_sys.addaudithook(_guard)
del _guard
_code = open("program.py", encoding="utf-8").read()
exec(compile(_code, "program.py", "exec"), {{"__name__": "__main__"}})
"""


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0
    memory_mb: int = 1024
    file_size_mb: int = 16
    max_processes: int = 64


@dataclass(frozen=True)
class SandboxResult:
    status: str  # "passed" | "failed" | "timeout"
    returncode: int | None
    stderr_tail: str

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@functools.lru_cache(maxsize=1)
def network_namespace_available() -> bool:
    """Whether ``unshare --user --net`` works here (kernels and containers may forbid it)."""
    if shutil.which("unshare") is None:
        return False
    try:
        probe = subprocess.run(
            ["unshare", "--user", "--map-root-user", "--net", "true"], capture_output=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def _limit_resources(limits: SandboxLimits) -> None:
    """preexec_fn: runs in the child between fork and exec."""
    os.setsid()  # own process group: the parent kills every descendant at once
    cpu = int(limits.timeout_s) + 1
    memory = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    size = limits.file_size_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))


def _clean_env(scratch: Path) -> dict[str, str]:
    # Nothing inherited: tokens and credentials in the parent's environment never reach the program.
    return {"PATH": "/usr/bin:/bin", "HOME": str(scratch), "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}


def _command(script: Path) -> list[str]:
    command = [sys.executable, "-I", "-B", str(script)]
    if network_namespace_available():
        return ["unshare", "--user", "--map-root-user", "--net", *command]
    return command


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def run_program(program: str, limits: SandboxLimits | None = None) -> SandboxResult:
    """Run ``program`` (Python source) in the sandbox; passed means exit status 0 within the limits."""
    limits = limits or SandboxLimits()
    scratch = Path(tempfile.mkdtemp(prefix="massive-sft-sandbox-"))
    try:
        (scratch / "program.py").write_text(program, encoding="utf-8")
        launcher = scratch / "_launcher.py"
        launcher.write_text(_PRELUDE.format(scratch=str(scratch)), encoding="utf-8")
        process = subprocess.Popen(
            _command(launcher),
            cwd=scratch,
            env=_clean_env(scratch),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=functools.partial(_limit_resources, limits),
        )
        try:
            _, stderr = process.communicate(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            process.communicate()
            return SandboxResult("timeout", None, f"killed after {limits.timeout_s}s")
        _kill_group(process)  # leftovers the program may have started before failing
        status = "passed" if process.returncode == 0 else "failed"
        return SandboxResult(status, process.returncode, stderr.decode("utf-8", "replace")[-2000:])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def check_program(prompt: str, completion: str, test: str, entry_point: str | None) -> str:
    """The program that tests one completion: HumanEval's ``prompt + completion + test + check(f)``."""
    call = f"\ncheck({entry_point})\n" if entry_point else "\n"
    return f"{prompt}{completion}\n\n{test}\n{call}"
