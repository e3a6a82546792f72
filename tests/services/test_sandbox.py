"""The code sandbox: real work succeeds; every escape attempt ends with a clear result, the test process unharmed."""

from __future__ import annotations

import asyncio
import os
import select
import socket
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from services.sandbox import runner as sandbox
from services.sandbox.runner import READABLE_FILES, SandboxResult, arun_python, read_roots, run_python, written_files


@lru_cache(maxsize=1)
def kernel_layers() -> tuple[str, ...]:
    return run_python("pass").isolation


def denied(result: SandboxResult) -> bool:
    return not result.ok and not result.timed_out and "PermissionError" in result.stderr


def test_pandas_answers_a_data_question_and_reports_files_written() -> None:
    csv = "date,amount\n2024-01-03,12.5\n2024-01-01,40\n2024-01-02,7.25\n"
    code = (
        "import pandas as pd\n"
        "df = pd.read_csv('transactions.csv', parse_dates=['date'])\n"
        "last = df.sort_values('date', ascending=False).head(2)\n"
        "print(last['amount'].tolist())\n"
        "import os\n"
        "os.makedirs('out')\n"
        "last.to_csv('out/last.csv', index=False)\n"
    )
    result = run_python(code, files={"transactions.csv": csv}, timeout_s=60)
    assert result.ok, result.stderr
    assert result.stdout.strip() == "[12.5, 7.25]"
    assert set(result.files) == {"out/last.csv"}  # the unchanged input is not reported
    assert "2024-01-03" in result.files["out/last.csv"]


@pytest.mark.parametrize(
    "code",
    [
        "print(open('/etc/passwd').read())",
        "print(open('../../../../../../../../etc/passwd').read())",
        "import os; os.chdir('/etc'); print(open('passwd').read())",
        "import os; os.symlink('/etc/passwd', 'p'); print(open('p').read())",
        "import pathlib; print(pathlib.Path('/etc/passwd').read_text())",
        "import os; print(os.listdir('/etc'))",
    ],
)
def test_reading_outside_the_work_dir_is_refused(code: str) -> None:
    result = run_python(code)
    assert denied(result), result
    assert "root:" not in result.stdout and "passwd" not in result.stdout


def test_writing_outside_the_work_dir_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    result = run_python(f"open({str(target)!r}, 'w').write('x')")
    assert denied(result)
    assert not target.exists()


def test_sockets_are_refused_and_nothing_reaches_a_local_listener() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        result = run_python(f"import socket; socket.create_connection(('127.0.0.1', {port})); print('connected')")
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert denied(result)
    assert "connected" not in result.stdout


def test_a_fork_bomb_ends_at_once_without_spawning() -> None:
    result = run_python("import os\nwhile True:\n    os.fork()", timeout_s=30)
    assert denied(result)


def test_subprocesses_are_refused() -> None:
    result = run_python("import subprocess; print(subprocess.run(['cat', '/etc/passwd']).returncode)")
    assert denied(result)


def test_allocating_10_gb_stops_with_a_memory_result() -> None:
    result = run_python("x = bytearray(10 * 1024**3)\nprint('allocated')", memory_mb=256, timeout_s=30)
    assert result.killed_reason == "memory"
    assert not result.ok and not result.timed_out
    assert "allocated" not in result.stdout


def test_an_endless_loop_is_killed_at_the_wall_clock_limit() -> None:
    result = run_python("while True:\n    pass", timeout_s=1)
    assert result.timed_out and result.killed_reason == "timeout"
    assert result.exit_code is None and not result.ok
    assert "wall-clock" in result.stderr


def test_flooding_stdout_stops_the_run_at_the_output_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOM_SANDBOX_MAX_OUTPUT_BYTES", "4096")
    from loom.settings import get_settings

    get_settings.cache_clear()
    result = run_python("while True:\n    print('x' * 1000)", timeout_s=30)
    assert result.killed_reason == "output" and not result.timed_out
    assert len(result.stdout) < 4096 + 100


def test_signalling_the_parent_is_refused_and_the_test_process_survives() -> None:
    result = run_python("import os, signal; os.kill(os.getppid(), signal.SIGKILL)")
    assert denied(result)
    assert os.getpid() > 0  # still here


def test_input_files_cannot_escape_the_work_dir() -> None:
    with pytest.raises(PermissionError):
        run_python("pass", files={"../outside.txt": "x"})


def test_written_files_never_follow_links(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to("/etc/passwd")
    (tmp_path / "real.txt").write_text("hello")
    assert written_files(tmp_path, {}, 1000) == {"real.txt": "hello"}


async def test_arun_python_leaves_the_event_loop_free() -> None:
    task = asyncio.create_task(arun_python("while True:\n    pass", timeout_s=2))
    await asyncio.sleep(0)  # let the task start; a blocking call would finish before returning here
    assert not task.done()
    result = await task
    assert result.timed_out


def test_without_a_network_namespace_sockets_are_refused_by_seccomp(monkeypatch: pytest.MonkeyPatch) -> None:
    libc = sandbox._libc()

    class NoUnshare:
        prctl = libc.prctl

        @staticmethod
        def unshare(flags: int) -> int:
            return -1

    monkeypatch.setattr(sandbox, "_libc", NoUnshare)
    result = run_python("import socket; socket.socket()")
    assert "netns" not in result.isolation
    assert denied(result)
    if "seccomp" in kernel_layers():
        assert "seccomp-net" in result.isolation


def test_kernel_layers_hold_even_without_the_audit_hook(tmp_path: Path) -> None:
    """If the Python-level hook were bypassed, Landlock and seccomp still refuse the escape."""
    if not {"landlock-fs", "seccomp"} <= set(kernel_layers()):
        pytest.skip("needs Landlock and seccomp (Linux ≥ 5.13)")
    work = tmp_path / "work"
    work.mkdir()
    probe = f"""
import ctypes, os, socket, sys
sys.path.insert(0, {str(Path(sandbox.__file__).parent)!r})
import bootstrap as b

def fork():
    if ctypes.CDLL(None, use_errno=True).fork() == -1:
        raise OSError(ctypes.get_errno(), "fork")
    os._exit(0)

b.apply_landlock({str(work)!r}, {read_roots()!r}, {list(READABLE_FILES)!r})
b.apply_seccomp(block_sockets=True)
for name, attempt in [
    ("read", lambda: open("/etc/passwd").read()),
    ("fork", fork),
    ("socket", lambda: socket.socket()),
]:
    try:
        print(name, "escaped", attempt())
    except OSError as exc:
        print(name, "refused", exc.errno)
"""
    completed = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True, timeout=60)
    lines: dict[str, Any] = dict(line.split(" ", 1) for line in completed.stdout.splitlines())
    assert lines["read"].startswith("refused")
    assert lines["socket"].startswith("refused")
    assert lines["fork"].startswith("refused")


def test_the_sandbox_dies_with_a_killed_server() -> None:
    """Its wall clock is kept by the parent: a server killed with SIGKILL must not leave code running for ever."""
    server = f"""
import os, sys, threading
sys.path.insert(0, {str(Path(__file__).parents[2])!r})
from services.sandbox.runner import run_python
code = "open('running', 'w').close(); import time; time.sleep(600)"
worker = threading.Thread(target=run_python, args=(code,), kwargs={{"timeout_s": 600}})
worker.start()
while not (children := open(f"/proc/{{os.getpid()}}/task/{{worker.native_id}}/children").read()):
    pass
sandboxed = children.split()[0]
while not os.path.exists(f"/proc/{{sandboxed}}/cwd/running"):  # past its start-up: running the code
    pass
print(sandboxed, flush=True)
worker.join()
"""
    process = subprocess.Popen([sys.executable, "-c", server], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    sandboxed = os.pidfd_open(int(process.stdout.readline()))  # becomes readable when that process ends
    try:
        assert select.select([sandboxed], [], [], 0)[0] == []  # running
        process.kill()
        process.wait(timeout=30)
        assert select.select([sandboxed], [], [], 30)[0] == [sandboxed], "the sandbox outlived its server"
    finally:
        os.close(sandboxed)
