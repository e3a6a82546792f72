"""Run model-written Python in a fenced child process (seed 001: "always sandbox code execution").

Every run gets a fresh temporary work dir as cwd and a minimal environment, and runs as
``python -I -B services/sandbox/bootstrap.py`` (``sys.executable``, so pandas is importable).

Guaranteed on any Linux (kernel-enforced, set in ``preexec_fn`` before the interpreter starts):
  - its own session and process group, killed as a whole on the wall-clock timeout and after every run;
  - killed with the server process, even when that is SIGKILLed (``PR_SET_PDEATHSIG``);
  - rlimits: address space (``memory_mb``), CPU seconds (timeout + 1), file size, open files, processes
    (RLIMIT_NPROC does not bind root, which the seccomp layer covers), no core dumps;
  - stdout/stderr read by the parent and capped at ``sandbox_max_output_bytes``: more ends the run.
Applied where the kernel permits, and listed in ``SandboxResult.isolation``:
  - ``netns``: a new, empty network namespace (``unshare(CLONE_NEWUSER|CLONE_NEWNET)``), so no network;
  - ``landlock-*``: filesystem reads only beneath the Python installation and system libraries, writes
    only beneath the work dir, no TCP, no signals to processes outside the sandbox;
  - ``seccomp``: no fork/exec (threads allowed), no rlimit changes; ``seccomp-net``: no ``socket()``
    when the network namespace could not be created.
Always, but best effort only (PEP 578 audit hooks are not a security boundary): ``audit-hook`` refuses
opens outside the work dir (read-only access to the Python installation), process creation, signals,
sockets, ``ctypes`` and ``gc`` introspection.

Not guaranteed: disk usage by many files (each file is capped), CPU/memory side channels, kernel bugs.
Without ``landlock-fs`` and ``seccomp`` in ``isolation`` this is a soft sandbox; for hostile
multi-tenant use, also run the server in a container or micro-VM (gVisor, Firecracker).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import math
import os
import resource
import shutil
import signal
import site
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Literal

from loom.settings import get_settings
from services.paths import inside

log = logging.getLogger(__name__)

KilledReason = Literal["timeout", "memory", "cpu", "output"]
BOOTSTRAP = Path(__file__).with_name("bootstrap.py")
SYSTEM_LIBRARIES = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib", "/usr/share/zoneinfo")
READABLE_FILES = ("/dev/null", "/dev/urandom", "/etc/ld.so.cache", "/etc/localtime")
MAX_FILES = 50
EXTRA_TASKS = 64
"""Processes/threads the child may add to its user's count (the RLIMIT_NPROC backstop)."""
_CLONE_NEWUSER, _CLONE_NEWNET = 0x10000000, 0x40000000
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class SandboxResult:
    stdout: str
    stderr: str
    exit_code: int | None
    """The process's exit status; None when a signal or the sandbox stopped it."""
    timed_out: bool
    killed_reason: KilledReason | None
    files: dict[str, str]
    """Relative path → text (truncated) of files the code created or changed in its work dir."""
    isolation: tuple[str, ...] = ()
    """Layers that applied to this run, e.g. ("rlimits", "netns", "landlock-fs", "seccomp", "audit-hook")."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.killed_reason is None

    def summary(self, max_chars: int = 4000) -> str:
        """A compact text for a model: status, output and the files written."""
        status = "ok" if self.ok else f"failed ({self.killed_reason or f'exit code {self.exit_code}'})"
        parts = [f"status: {status}", f"stdout:\n{self.stdout[-max_chars:]}"]
        if self.stderr:
            parts.append(f"stderr:\n{self.stderr[-max_chars:]}")
        parts += [f"file {name}:\n{text[:max_chars]}" for name, text in self.files.items()]
        return "\n".join(parts)


@dataclass(frozen=True)
class Limits:
    timeout_s: float
    memory_mb: int
    max_output_bytes: int
    max_file_bytes: int


def run_python(
    code: str, *, files: dict[str, str] | None = None, timeout_s: float | None = None, memory_mb: int | None = None
) -> SandboxResult:
    """Run ``code`` with ``files`` (relative path → text) in its work dir; never raises for the code's faults."""
    settings = get_settings()
    limits = Limits(
        timeout_s=timeout_s or settings.sandbox_timeout_s,
        memory_mb=memory_mb or settings.sandbox_memory_mb,
        max_output_bytes=settings.sandbox_max_output_bytes,
        max_file_bytes=settings.sandbox_max_file_bytes,
    )
    root = Path(tempfile.mkdtemp(prefix="loom-sandbox-")).resolve()
    try:
        work = root / "work"
        work.mkdir()
        for name, text in (files or {}).items():
            target = inside(work, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        (root / "main.py").write_text(code, encoding="utf-8")
        return _execute(root, work, limits, files or {})
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def arun_python(
    code: str, *, files: dict[str, str] | None = None, timeout_s: float | None = None, memory_mb: int | None = None
) -> SandboxResult:
    """``run_python`` on a worker thread, so the event loop keeps serving other runs meanwhile."""
    return await asyncio.to_thread(run_python, code, files=files, timeout_s=timeout_s, memory_mb=memory_mb)


def _execute(root: Path, work: Path, limits: Limits, inputs: dict[str, str]) -> SandboxResult:
    status_read, status_write = os.pipe()
    config = {
        "work": str(work),
        "code_path": str(root / "main.py"),
        "read_roots": read_roots(),
        "read_files": list(READABLE_FILES),
        "parent_netns": _netns_inode(),
        "status_fd": status_write,
    }
    try:
        process = subprocess.Popen(
            [sys.executable, "-I", "-B", str(BOOTSTRAP), json.dumps(config)],
            cwd=work,
            env=_environment(work),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(status_write,),
            start_new_session=True,
            preexec_fn=_child_setup(limits, _tasks_of_this_user() + EXTRA_TASKS),
        )
    finally:
        os.close(status_write)
    with os.fdopen(status_read, "rb") as status:
        return _supervise(process, status, work, limits, inputs)


def _supervise(
    process: subprocess.Popen[bytes], status: IO[bytes], work: Path, limits: Limits, inputs: dict[str, str]
) -> SandboxResult:
    assert process.stdout is not None and process.stderr is not None
    overflow = threading.Event()

    def stop() -> None:
        overflow.set()
        _kill_group(process.pid)

    readers = [_Reader(stream, limits.max_output_bytes, stop) for stream in (process.stdout, process.stderr)]
    try:
        process.wait(timeout=limits.timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    _kill_group(process.pid)  # also ends anything the code left behind
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    returncode = process.wait()
    stdout, stderr = (reader.text() for reader in readers)
    layers = _layers(status.read())
    reason = killed_reason(returncode, timed_out, overflow.is_set(), stderr)
    if note := _stop_note(reason, returncode, limits):
        stderr = f"{stderr}\n[sandbox] {note}".lstrip("\n")
    log.info("sandbox run: exit=%s reason=%s isolation=%s", returncode, reason, ",".join(layers))
    return SandboxResult(
        stdout=stdout,
        stderr=stderr,
        exit_code=returncode if returncode >= 0 else None,
        timed_out=timed_out,
        killed_reason=reason,
        files=written_files(work, inputs, limits.max_output_bytes),
        isolation=layers,
    )


class _Reader:
    """Drains one pipe on a thread, keeping the first ``limit`` bytes and stopping the run past it."""

    def __init__(self, stream: IO[bytes], limit: int, on_overflow: Callable[[], object]) -> None:
        self._stream, self._limit, self._on_overflow = stream, limit, on_overflow
        self._chunks: list[bytes] = []
        self._size = 0
        self._truncated = False
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        with self._stream:
            while chunk := self._stream.read1(65536):  # type: ignore[attr-defined]
                keep = chunk[: max(self._limit - self._size, 0)]
                self._chunks.append(keep)
                self._size += len(keep)
                if len(keep) < len(chunk) and not self._truncated:
                    self._truncated = True
                    self._on_overflow()

    def text(self) -> str:
        self._thread.join(timeout=5)
        text = b"".join(self._chunks).decode("utf-8", errors="replace")
        return text + (f"\n[sandbox] output truncated at {self._limit} bytes" if self._truncated else "")


def killed_reason(returncode: int, timed_out: bool, overflow: bool, stderr: str) -> KilledReason | None:
    if timed_out:
        return "timeout"
    if overflow:
        return "output"
    if returncode == -signal.SIGXCPU:
        return "cpu"
    last_line = (stderr.rstrip().splitlines() or [""])[-1]
    if returncode != 0 and last_line.startswith("MemoryError"):
        return "memory"
    return None


def _stop_note(reason: KilledReason | None, returncode: int, limits: Limits) -> str:
    notes = {
        "timeout": f"stopped: wall-clock limit of {limits.timeout_s:g} s reached",
        "output": f"stopped: output exceeded {limits.max_output_bytes} bytes",
        "cpu": "stopped: CPU-time limit reached",
        "memory": f"stopped: memory limit of {limits.memory_mb} MB reached",
    }
    if reason:
        return notes[reason]
    return f"killed by signal {signal.Signals(-returncode).name}" if returncode < 0 else ""


def written_files(work: Path, inputs: dict[str, str], max_bytes: int) -> dict[str, str]:
    """Files the code created or changed; links are never followed, so nothing outside can leak."""
    found: dict[str, str] = {}
    for folder, dirs, names in os.walk(work, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not (folder == str(work) and d == ".cache"))
        for name in sorted(names):
            path = Path(folder, name)
            relative = path.relative_to(work).as_posix()
            text = _read_own_file(path, max_bytes)
            if text is not None and inputs.get(relative) != text:
                found[relative] = text
            if len(found) >= MAX_FILES:
                return found
    return found


def _read_own_file(path: Path, max_bytes: int) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None  # a symbolic link, a FIFO that would block, or gone
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
            return None  # a hard link could point at a file outside the sandbox
        data = handle.read(max_bytes + 1)
    if b"\0" in data[:4096]:
        return f"<binary file, {info.st_size} bytes>"
    text = data[:max_bytes].decode("utf-8", errors="replace")
    return text + ("\n[truncated]" if len(data) > max_bytes else "")


def _child_setup(limits: Limits, max_tasks: int) -> Callable[[], None]:
    """The ``preexec_fn``: only async-signal-safe-ish syscalls, nothing that allocates locks."""
    unshare = _libc().unshare
    memory = limits.memory_mb * 1024 * 1024
    cpu = math.ceil(limits.timeout_s) + 1
    rlimits = (
        (resource.RLIMIT_AS, (memory, memory)),
        (resource.RLIMIT_CPU, (cpu, cpu + 1)),
        (resource.RLIMIT_FSIZE, (limits.max_file_bytes, limits.max_file_bytes)),
        (resource.RLIMIT_NOFILE, (256, 256)),
        (resource.RLIMIT_NPROC, (max_tasks, max_tasks)),
        (resource.RLIMIT_CORE, (0, 0)),
    )

    prctl, parent = _libc().prctl, os.getpid()

    def setup() -> None:
        for kind, value in rlimits:
            resource.setrlimit(kind, value)
        if unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
            unshare(_CLONE_NEWNET)  # root where user namespaces are off; failure leaves seccomp-net
        # killed with the server, even by SIGKILL (the wall clock is the parent's); set after unshare, which
        # clears it. The forking thread supervises the child until it ends, so it cannot fire early.
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the server died before the line above
            os.kill(os.getpid(), signal.SIGKILL)

    return setup


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    """Loaded in the parent, so the forked child never has to ``dlopen``."""
    return ctypes.CDLL(None, use_errno=True)


@lru_cache(maxsize=1)
def _netns_inode() -> int:
    return os.stat("/proc/self/ns/net").st_ino


@lru_cache(maxsize=1)
def read_roots() -> list[str]:
    """Where sandboxed code may read: the interpreter, its packages, and the system's shared libraries."""
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *site.getsitepackages()]
    roots = {os.path.realpath(path) for path in [*candidates, *SYSTEM_LIBRARIES] if os.path.isdir(path)}
    return sorted(roots)


def _tasks_of_this_user() -> int:
    """Threads this uid already runs: RLIMIT_NPROC counts them all, not just the sandbox's."""
    if os.getuid() == 0:
        return 0  # root is exempt from RLIMIT_NPROC; seccomp refuses fork instead
    uid, total = str(os.getuid()), 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                fields = dict(line.split(":", 1) for line in Path(entry.path, "status").read_text().splitlines())
            except (OSError, ValueError):
                continue
            total += int(fields.get("Threads", "1")) if fields.get("Uid", "").split()[:1] == [uid] else 0
    return total


def _environment(work: Path) -> dict[str, str]:
    cache = work / ".cache"
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(work),
        "TMPDIR": str(work),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(cache / "matplotlib"),
        "XDG_CACHE_HOME": str(cache),
    }


def _layers(raw: bytes) -> tuple[str, ...]:
    try:
        return tuple(str(layer) for layer in json.loads(raw or b"[]"))
    except ValueError:
        return ()


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
