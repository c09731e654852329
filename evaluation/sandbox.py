"""Run untrusted generated code (HumanEval / MBPP completions) so that it cannot hurt the host.

Every program runs under bubblewrap (``bwrap``, Debian package ``bubblewrap``) in kernel namespaces:

- new PID, network, mount, IPC and UTS namespaces: no host process is visible (nor signalable), the
  only network is an empty loopback, and the whole namespace dies with its PID 1 (``--die-with-parent``);
- a read-only view of the system (``/usr`` and the interpreter's prefix; no ``/home``, no ``$HOME``, no
  ``/etc``, no project files) and a private, size-limited tmpfs ``/tmp`` as the only writable place;
- an unprivileged user: when the evaluator is root, each program gets its own unused uid (dropped to
  with ``setpriv``, no capabilities, no-new-privs); otherwise the evaluator's own uid inside a user
  namespace, shown as 65534, that may not create further user namespaces;
- an empty environment apart from ``PATH``/``HOME``/``LANG`` (no tokens, no credentials);
- ``RLIMIT_CPU``, ``RLIMIT_AS`` (memory per process), ``RLIMIT_FSIZE``, ``RLIMIT_NPROC`` and no core
  dumps, set inside the sandbox with ``prlimit`` (they bind because the uid is not root's);
- stdout and stderr read with a byte cap, and at the wall-clock limit the sandbox's process group is
  SIGKILLed, which takes the PID namespace (every descendant, ``setsid`` or not) with it.

Where bubblewrap is missing or the kernel denies namespaces, :func:`run_program` raises
:class:`SandboxUnavailable` unless the caller explicitly allowed unsandboxed code
(:func:`unsandboxed_code_allowed`, ``--allow-unsandboxed-code``): then programs run as plain child
processes with the same limits and environment, which isolates nothing."""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import resource
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from common.errors import MassiveSFTError

# System directories every program may read (read-only); /bin, /lib* are symlinks into /usr on Debian.
SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/sbin")
SANDBOX_TMP = "/tmp"
PROGRAM = f"{SANDBOX_TMP}/program.py"
# Root evaluators give each program its own uid from this range, so RLIMIT_NPROC counts that
# program's processes only (it counts per uid) and concurrent sandboxes never share a budget.
UID_BASE = 0x40000000
UID_SLOTS = 0x3FFFFFFF
REAP_GRACE_S = 3.0  # after the SIGKILL: how long the pipes may take to close
READ_CHUNK = 65536

_ALLOW_UNSANDBOXED: ContextVar[bool] = ContextVar("allow_unsandboxed_code", default=False)
_PROGRAM_COUNTER = itertools.count()


class SandboxUnavailable(MassiveSFTError, RuntimeError):
    """Kernel-level isolation cannot be set up here, and unsandboxed code was not allowed."""


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0  # wall clock
    memory_mb: int = 1024  # address space per process
    file_size_mb: int = 16  # largest file a program may write
    tmp_mb: int = 64  # size of the private /tmp
    max_processes: int = 64
    output_bytes: int = 64 * 1024  # kept of stdout and of stderr each; the rest is read and dropped


@dataclass(frozen=True)
class SandboxResult:
    status: str  # "passed" | "failed" | "timeout"
    returncode: int | None
    stderr_tail: str
    stdout_tail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


# ---------------------------------------------------------------- policy


@contextlib.contextmanager
def unsandboxed_code_allowed(allowed: bool = True) -> Iterator[None]:
    """Within this block (this thread or task), run programs without isolation when it is unavailable."""
    token = _ALLOW_UNSANDBOXED.set(allowed)
    try:
        yield
    finally:
        _ALLOW_UNSANDBOXED.reset(token)


def refusal(problem: str) -> str:
    return (
        f"generated code is not run: it cannot be sandboxed here ({problem}); install bubblewrap "
        "(apt-get install bubblewrap) and allow user namespaces, or pass --allow-unsandboxed-code "
        "to run it without isolation"
    )


def require_isolation(allow_unsandboxed: bool) -> None:
    """Raise :class:`SandboxUnavailable` (one line, naming the fix) unless isolation works or is waived."""
    problem = isolation_problem()
    if problem is not None and not allow_unsandboxed:
        raise SandboxUnavailable(refusal(problem))


@functools.lru_cache(maxsize=1)
def isolation_problem() -> str | None:
    """Why programs cannot be isolated here, or None when they can (a real probe, run once)."""
    if shutil.which("bwrap") is None:
        return "bwrap is not installed"
    result = _execute(_sandbox_command(SandboxLimits()), "raise SystemExit(0)\n", SandboxLimits())
    if result.returncode != 0:
        lines = (result.stderr_tail or f"exit status {result.returncode}").strip().splitlines()
        return f"bwrap failed: {lines[-1] if lines else result.returncode}"
    return None


# ---------------------------------------------------------------- commands


def _interpreter() -> str:
    return os.path.realpath(sys.executable)


def _prefix_mounts() -> list[str]:
    """Bind the interpreter's installation read-only where it lives, unless a system dir holds it.
    Its parent directories are created world-searchable: on the host they may be private (``/root``)."""
    prefix = Path(os.path.realpath(sys.base_prefix))
    if any(prefix.is_relative_to(d) for d in SYSTEM_DIRS):
        return []
    parents = [str(p) for p in reversed(prefix.parents) if str(p) != "/"]
    created = [arg for parent in parents for arg in ("--perms", "0755", "--dir", parent)]
    return [*created, "--ro-bind", str(prefix), str(prefix)]


def _limits_command(limits: SandboxLimits) -> list[str]:
    mb = 1024 * 1024
    return [
        "prlimit",
        f"--cpu={int(limits.timeout_s) + 1}",
        f"--as={limits.memory_mb * mb}",
        f"--fsize={limits.file_size_mb * mb}",
        f"--nproc={limits.max_processes}",
        "--core=0",
        "--",
    ]


def _next_uid() -> int:
    return UID_BASE + ((os.getpid() << 12) + next(_PROGRAM_COUNTER) % 4096) % UID_SLOTS


def _user_switch() -> tuple[list[str], list[str]]:
    """(bwrap options, command prefix) that make the program run as an unprivileged user."""
    if os.geteuid() != 0:
        return ["--unshare-user", "--uid", "65534", "--gid", "65534", "--disable-userns"], []
    uid = _next_uid()
    drop = [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
    ]
    return [], drop


def _sandbox_command(limits: SandboxLimits) -> list[str]:
    user_options, user_prefix = _user_switch()
    namespaces = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    system = [arg for d in SYSTEM_DIRS if os.path.exists(d) for arg in ("--ro-bind", d, d)]
    return [
        "bwrap",
        *namespaces,
        *user_options,
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "sandbox",
        "--clearenv",
        *("--setenv", "PATH", "/usr/bin:/bin"),
        *("--setenv", "HOME", SANDBOX_TMP),
        *("--setenv", "LANG", "C.UTF-8"),
        *("--setenv", "PYTHONHASHSEED", "0"),
        *system,
        *_prefix_mounts(),
        *("--proc", "/proc", "--dev", "/dev"),
        *("--perms", "1777", "--size", str(limits.tmp_mb * 1024 * 1024), "--tmpfs", SANDBOX_TMP),
        *("--perms", "0444", "--file", "{program_fd}", PROGRAM),
        *("--chdir", SANDBOX_TMP),
        "--",
        *user_prefix,
        *_limits_command(limits),
        _interpreter(),
        "-I",
        "-B",
        PROGRAM,
    ]


# ---------------------------------------------------------------- running


def _set_limits(limits: SandboxLimits) -> None:
    """preexec_fn of the unsandboxed fallback (runs in the child between fork and exec)."""
    mb = 1024 * 1024
    cpu = int(limits.timeout_s) + 1
    for kind, value in (
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_AS, limits.memory_mb * mb),
        (resource.RLIMIT_FSIZE, limits.file_size_mb * mb),
        (resource.RLIMIT_NPROC, limits.max_processes),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(kind, (value, value))


class _CappedTail:
    """The last ``cap`` bytes written to it."""

    def __init__(self, cap: int) -> None:
        self.cap, self.data = cap, bytearray()

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.cap:
            del self.data[: len(self.data) - self.cap]

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _drain(process: subprocess.Popen, limits: SandboxLimits) -> tuple[bool, _CappedTail, _CappedTail]:
    """Read stdout and stderr (capped) until both close; at the deadline kill the group. Returns
    (timed out, stdout, stderr)."""
    tails = {
        process.stdout: _CappedTail(limits.output_bytes),
        process.stderr: _CappedTail(limits.output_bytes),
    }
    deadline = time.monotonic() + limits.timeout_s
    timed_out = False
    with selectors.DefaultSelector() as selector:
        for stream in tails:
            selector.register(stream, selectors.EVENT_READ)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if timed_out:
                    break  # killed REAP_GRACE_S ago and a pipe is still open: stop reading it
                timed_out = True
                _kill_group(process)
                deadline = time.monotonic() + REAP_GRACE_S
                continue
            for key, _ in selector.select(timeout=remaining):
                chunk = os.read(key.fd, READ_CHUNK)
                if chunk:
                    tails[key.fileobj].add(chunk)
                else:
                    selector.unregister(key.fileobj)
    return timed_out, tails[process.stdout], tails[process.stderr]


def _execute(
    command: list[str], program: str, limits: SandboxLimits, success: int = 0, scratch: str | None = None
) -> SandboxResult:
    """Start ``command`` with ``program`` on a memfd (``{program_fd}`` in the command is its number);
    passed means exit status ``success``. ``scratch``: the unsandboxed fallback's working directory;
    with no sandbox to set the limits inside, they are set here before exec."""
    program_fd = os.memfd_create("program", 0)
    try:
        os.write(program_fd, program.encode("utf-8"))
        os.lseek(program_fd, 0, os.SEEK_SET)
        argv = [arg.replace("{program_fd}", str(program_fd)) for arg in command]
        process = subprocess.Popen(
            argv,
            cwd=scratch,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(program_fd,),
            start_new_session=True,  # its own process group: one killpg reaches every descendant
            preexec_fn=functools.partial(_set_limits, limits) if scratch is not None else None,
        )
    finally:
        os.close(program_fd)
    with process:
        timed_out, stdout, stderr = _drain(process, limits)
        _kill_group(process)  # leftovers started in the background before the program ended
        process.wait()
    if timed_out:
        return SandboxResult("timeout", None, f"killed after {limits.timeout_s}s", stdout.text())
    status = "passed" if process.returncode == success else "failed"
    return SandboxResult(status, process.returncode, stderr.text(), stdout.text())


def _run_unsandboxed(program: str, limits: SandboxLimits, success: int) -> SandboxResult:
    scratch = tempfile.mkdtemp(prefix="massive-sft-unsandboxed-")
    try:
        command = [_interpreter(), "-I", "-B", "/dev/fd/{program_fd}"]
        return _execute(command, program, limits, success, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run_program(program: str, limits: SandboxLimits | None = None) -> SandboxResult:
    """Run ``program`` (Python source) in the sandbox; passed means it ran to its end within the
    limits. Raises :class:`SandboxUnavailable` when it cannot be isolated and that was not explicitly
    allowed."""
    limits = limits or SandboxLimits()
    # The program's last statement exits with a status drawn here: a completion that calls
    # sys.exit(0) or os._exit(0) before the tests ran does not pass.
    success = 3 + secrets.randbelow(100)
    source = f"{program}\nraise SystemExit({success})\n"
    problem = isolation_problem()
    if problem is None:
        return _execute(_sandbox_command(limits), source, limits, success=success)
    if not _ALLOW_UNSANDBOXED.get():
        raise SandboxUnavailable(refusal(problem))
    return _run_unsandboxed(source, limits, success)


def check_program(prompt: str, completion: str, test: str, entry_point: str | None) -> str:
    """The program that tests one completion: HumanEval's ``prompt + completion + test + check(f)``."""
    call = f"\ncheck({entry_point})\n" if entry_point else "\n"
    return f"{prompt}{completion}\n\n{test}\n{call}"
