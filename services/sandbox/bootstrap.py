"""Runs inside the sandbox child before the user's code: fences it in, then executes it.

Started by ``services.sandbox.runner`` as ``python -I -B bootstrap.py <config-json>``, after the parent's
``preexec_fn`` set rlimits and tried to unshare the network namespace. Layers, in order:

1. Landlock (Linux ≥ 5.13, kernel-enforced): reads only beneath the Python installation, anything
   beneath the work dir, no TCP bind/connect (ABI ≥ 4), no signals or abstract sockets outside the
   sandbox (ABI ≥ 6).
2. seccomp (kernel-enforced): no fork/vfork/exec, no ``clone`` other than threads, no raising rlimits,
   and no ``socket()`` at all when the network namespace could not be unshared.
3. A ``sys.addaudithook`` hook (Python-level, always): the same file rules for ``open``/``listdir``/…,
   and refusals for process creation, signals, sockets, ``ctypes`` and ``gc`` introspection.

Layers 1-2 are applied where the kernel allows and reported on the status fd; layer 3 alone is best
effort (PEP 578 hooks are not a security boundary), so treat a host without 1-2 as a soft sandbox.
Only the standard library may be used here.
"""

from __future__ import annotations

import ctypes
import json
import linecache
import os
import stat
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

# ---- Landlock -------------------------------------------------------------------------------------
_SYSCALLS = {  # machine → (landlock_create_ruleset, add_rule, restrict_self)
    "x86_64": (444, 445, 446),
    "aarch64": (444, 445, 446),
}
_FS_READ = 1 | 4 | 8  # EXECUTE | READ_FILE | READ_DIR
_FILE_RIGHTS = 1 | 2 | 4 | (1 << 14) | (1 << 15)  # rights that apply to a single file


def _fs_rights(abi: int) -> int:
    rights = (1 << 13) - 1  # ABI 1: execute … make_sym
    if abi >= 2:
        rights |= 1 << 13  # REFER
    if abi >= 3:
        rights |= 1 << 14  # TRUNCATE
    if abi >= 5:
        rights |= 1 << 15  # IOCTL_DEV
    return rights


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


def apply_landlock(work: str, read_roots: Sequence[str], read_files: Sequence[str]) -> list[str]:
    numbers = _SYSCALLS.get(os.uname().machine)
    if numbers is None:
        return []
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(numbers[0], None, 0, 1)
    if abi < 1:
        return []
    handled = _fs_rights(abi)
    attr = (ctypes.c_uint64 * 3)(handled, 3 if abi >= 4 else 0, 3 if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = libc.syscall(numbers[0], ctypes.byref(attr), size, 0)
    if ruleset < 0:
        return []
    rules = [(work, handled), *((root, _FS_READ) for root in read_roots)]
    rules += [(path, (4 | 2 | (1 << 14) if path == "/dev/null" else 4) & handled) for path in read_files]
    for path, rights in rules:
        _add_rule(libc, numbers[1], ruleset, path, rights)
    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
    if libc.syscall(numbers[2], ruleset, 0) != 0:
        return []
    layers = ["landlock-fs"] + (["landlock-net"] if abi >= 4 else []) + (["landlock-scope"] if abi >= 6 else [])
    return layers


def _add_rule(libc: Any, number: int, ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return
    if not stat.S_ISDIR(os.fstat(fd).st_mode):
        rights &= _FILE_RIGHTS
    rule = _PathBeneath(rights, fd)
    libc.syscall(number, ruleset, 1, ctypes.byref(rule), 0)
    os.close(fd)


# ---- seccomp --------------------------------------------------------------------------------------
_ARCH = {  # machine → (AUDIT_ARCH, {name: syscall number})
    "x86_64": (
        0xC000003E,
        {"clone": 56, "clone3": 435, "fork": 57, "vfork": 58, "execve": 59, "execveat": 322, "socket": 41}
        | {"setrlimit": 160, "prlimit64": 302},
    ),
    "aarch64": (
        0xC00000B7,
        {"clone": 220, "clone3": 435, "execve": 221, "execveat": 281, "socket": 198, "setrlimit": 164}
        | {"prlimit64": 261},
    ),
}
_LD, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _ERRNO = 0x7FFF0000, 0x00050000
_EPERM, _ENOSYS, _CLONE_THREAD = 1, 38, 0x10000


class _SockFilter(ctypes.Structure):
    _fields_ = (("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32))


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter)))


def seccomp_program(machine: str, block_sockets: bool) -> list[tuple[int, int, int, int]] | None:
    """BPF that refuses process creation (threads excepted), rlimit changes and maybe ``socket()``."""
    if machine not in _ARCH:
        return None
    arch, nr = _ARCH[machine]
    denied = [nr[name] for name in ("fork", "vfork", "execve", "execveat", "setrlimit", "prlimit64") if name in nr]
    denied += [nr["socket"]] if block_sockets else []
    # Jumps are relative to the next instruction; the tail is: clone check (2), deny, enosys, allow.
    body: list[tuple[int, int, int, int]] = [(_LD, 0, 0, 4), (_JEQ, 1, 0, arch), (_RET, 0, 0, _ERRNO | _EPERM)]
    body += [(_LD, 0, 0, 0)]
    checks = [(_JGE, "deny", 0x40000000), (_JEQ, "enosys", nr["clone3"])]
    checks += [(_JEQ, "deny", number) for number in denied] + [(_JEQ, "clone", nr["clone"])]
    tail_at = len(body) + len(checks) + 1  # index of the first tail instruction
    labels = {"clone": tail_at, "deny": tail_at + 2, "enosys": tail_at + 3}
    for index, (code, label, value) in enumerate(checks, start=len(body)):
        body.append((code, labels[label] - index - 1, 0, value))
    body.append((_RET, 0, 0, _ALLOW))
    body += [(_LD, 0, 0, 16), (_JSET, 2, 0, _CLONE_THREAD)]  # clone: threads only
    body += [(_RET, 0, 0, _ERRNO | _EPERM), (_RET, 0, 0, _ERRNO | _ENOSYS), (_RET, 0, 0, _ALLOW)]
    return body


def apply_seccomp(block_sockets: bool) -> list[str]:
    program = seccomp_program(os.uname().machine, block_sockets)
    if program is None:
        return []
    libc = ctypes.CDLL(None, use_errno=True)
    filters = (_SockFilter * len(program))(*(_SockFilter(*instruction) for instruction in program))
    fprog = _SockFprog(len(program), filters)
    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
    if libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        return []
    return ["seccomp"] + (["seccomp-net"] if block_sockets else [])


# ---- audit hook -----------------------------------------------------------------------------------
_DENIED_EVENTS = frozenset(
    {"os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "subprocess.Popen"}
    | {"os.kill", "os.killpg", "signal.pthread_kill", "os.symlink", "os.link", "resource.setrlimit"}
    | {"resource.prlimit", "gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys.remote_exec"}
    | {"ctypes.dlopen", "ctypes.dlsym", "ctypes.dlsym/handle", "ctypes.cdata", "ctypes.call_function"}
    | {"ctypes.string_at", "ctypes.wstring_at", "ctypes.addressof", "webbrowser.open"}
)
_READ_EVENTS = frozenset({"os.listdir", "os.scandir", "os.chdir", "os.listxattr", "os.getxattr"})
_WRITE_EVENTS = frozenset(
    {"os.mkdir", "os.rmdir", "os.remove", "os.rename", "os.chmod", "os.chown", "os.utime", "os.truncate"}
    | {"os.setxattr", "os.removexattr", "os.chflags", "os.lchflags", "shutil.copyfile", "shutil.rmtree"}
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def make_resolver(lstat: Callable[[str], os.stat_result], readlink: Callable[[str], str]) -> Callable[[str], str]:
    """A ``realpath`` built on captured primitives, so user code cannot monkeypatch the hook's view."""
    getcwd, is_link = os.getcwd, stat.S_ISLNK

    def resolve(path: str) -> str:
        todo = (path if path.startswith("/") else getcwd() + "/" + path).split("/")[::-1]
        done: list[str] = []
        hops = 0
        while todo:
            part = todo.pop()
            if part in ("", "."):
                continue
            if part == "..":
                done = done[:-1]
                continue
            candidate = "/" + "/".join([*done, part])
            try:
                is_symlink = is_link(lstat(candidate).st_mode)
            except OSError:
                is_symlink = False
            if not is_symlink:
                done.append(part)
                continue
            hops += 1
            if hops > 40:
                raise PermissionError("sandbox: too many symbolic links")
            target = readlink(candidate)
            done = [] if target.startswith("/") else done
            todo.extend(target.split("/")[::-1])
        return "/" + "/".join(done)

    return resolve


def install_audit_hook(work: str, read_roots: Sequence[str], read_files: Sequence[str]) -> None:
    import pathlib

    resolve = make_resolver(os.lstat, os.readlink)
    roots, files, pure_fspath = tuple(read_roots), frozenset(read_files), pathlib.PurePath.__fspath__
    path_types = (pathlib.PurePosixPath, pathlib.PosixPath, pathlib.PurePath, pathlib.Path)
    busy = [False]

    def as_text(value: object) -> str | None:
        kind = type(value)
        if kind is str:
            return value  # type: ignore[return-value]
        if kind is bytes:
            return value.decode("utf-8", "surrogateescape")  # type: ignore[attr-defined]
        if kind is int or value is None:
            return None  # a descriptor, which could only come from a checked open
        if kind in path_types and kind.__fspath__ is pure_fspath:
            return str(pure_fspath(value))  # type: ignore[arg-type]
        raise PermissionError("sandbox: pass paths as str, bytes or pathlib.Path")

    def check(value: object, write: bool) -> None:
        text = as_text(value)
        if text is None:
            return
        path = resolve(text)
        if path == work or path.startswith(work + "/") or path == "/dev/null":
            return
        if not write and (path in files or any(path == r or path.startswith(r + "/") for r in roots)):
            return
        raise PermissionError(f"sandbox: {'writing' if write else 'reading'} {text!r} is outside the sandbox")

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if busy[0]:
            return
        busy[0] = True
        try:
            if event in _DENIED_EVENTS or event.startswith("socket."):
                raise PermissionError(f"sandbox: {event} is not allowed")
            if event == "open":
                mode, flags = args[1] or "", args[2] if len(args) > 2 and isinstance(args[2], int) else 0
                check(args[0], any(c in mode for c in "wax+") or bool(flags & _WRITE_FLAGS))
            elif event in _READ_EVENTS:
                check(args[0] if args else None, write=False)
            elif event in _WRITE_EVENTS:
                for value in args[:2] if event in ("os.rename", "shutil.copyfile") else args[:1]:
                    check(value, write=True)
            elif event == "sqlite3.connect" and args and args[0] != ":memory:":
                check(args[0], write=True)
        finally:
            busy[0] = False

    sys.addaudithook(hook)


# ---- main -----------------------------------------------------------------------------------------
def main() -> None:
    config = json.loads(sys.argv[1])
    work, roots, files = config["work"], config["read_roots"], config["read_files"]
    with open(config["code_path"], encoding="utf-8") as handle:
        source = handle.read()
    os.chdir(work)
    netns = os.stat("/proc/self/ns/net").st_ino != config["parent_netns"]
    layers = ["rlimits"] + (["netns"] if netns else [])
    layers += apply_landlock(work, roots, files)
    layers += apply_seccomp(block_sockets=not netns)
    install_audit_hook(work, roots, files)
    layers.append("audit-hook")
    with os.fdopen(config["status_fd"], "w") as status:
        status.write(json.dumps(layers))
    run_user_code(source)


def run_user_code(source: str) -> None:
    linecache.cache["main.py"] = (len(source), None, source.splitlines(True), "main.py")
    namespace: dict[str, Any] = {"__name__": "__main__", "__file__": "main.py", "__builtins__": __builtins__}
    main_module = type(sys)("__main__")
    main_module.__dict__.update(namespace)
    sys.modules["__main__"] = main_module
    sys.argv = ["main.py"]
    try:
        exec(compile(source, "main.py", "exec"), main_module.__dict__)
    except SystemExit:
        raise
    except BaseException as exc:
        report = traceback.TracebackException(type(exc), exc, exc.__traceback__)
        own = {__file__}  # hide the bootstrap's frames: the model should see only its code
        report.stack = traceback.StackSummary.from_list([f for f in report.stack if f.filename not in own])
        sys.stderr.write("".join(report.format()))
        sys.exit(1)


if __name__ == "__main__":
    main()
