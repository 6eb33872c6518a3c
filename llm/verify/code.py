"""Code answers: the extracted program and the record's tests, run by a harness in a sandbox.

A pass is the tests' own completion, reported by the harness (`llm/verify/harness.py`) on a channel the
answer cannot forge: a one-time secret the answer never sees, written after the last test statement ran.
The exit status means nothing: an answer that exits early (`os._exit(0)`, `raise SystemExit(0)`,
`sys.exit` in a tested function, an `atexit` hook), prints "tests passed", writes to the channel, patches
builtins or `os.write`, hooks `sys.excepthook`, returns an "always equal" object or looks for the tests on
disk fails (tests/llm/test_verify.py tries each one). What the harness refuses is listed in its docstring.

The sandbox is bubblewrap (Debian/Ubuntu package `bubblewrap`): new user, pid, network, IPC and UTS
namespaces, no capabilities, an unprivileged uid, a read-only view of the interpreter and the shared
libraries only (no /etc, no home, no data, no shell), a small tmpfs /tmp as the working directory, and
`--die-with-parent`. On top of it: rlimits on processes, address space, CPU time, file size and open
files, and a hard wall-clock limit that kills the whole pid namespace (stderr goes to a file, so a child
that escapes into its own session cannot hold a pipe open and stall the verdict). `sandbox="none"`
runs the program unconfined (rlimits and the harness's refusals only) for machines without user
namespaces, with a warning; its processes carry a marker in their environment and any still alive after
the verdict are killed.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.workers import kill_when_parent_thread_exits

SANDBOXES = ("bwrap", "none")
NO_BUBBLEWRAP = ("code verification runs tests under bubblewrap, which is not installed: install the `bubblewrap` "
                 "package (apt-get install bubblewrap), or pass --sandbox none to run submitted code unconfined")
MAX_PROCESSES = 16  # per sandbox, counted inside its own user namespace
MAX_FILE_BYTES = 16 << 20
TMPFS_BYTES = 64 << 20
MAX_OPEN_FILES = 256
_DETAIL_BYTES = 64 << 10  # how much of stderr's tail the verdict reads
_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)
# Defence in depth and a clear message; the network namespace is what actually cuts the network
# (a program can `importlib.reload(socket)`).
_NO_NETWORK = (
    "import socket as _s\n"
    "class _Blocked(_s.socket):\n"
    "    def __init__(self, *a, **k):\n        raise OSError('network access is disabled in the sandbox')\n"
    "def _blocked(*a, **k):\n    raise OSError('network access is disabled in the sandbox')\n"
    "_s.socket = _Blocked\n_s.create_connection = _s.getaddrinfo = _blocked\ndel _s\n"
)
# RLIMIT_NPROC is set from inside: the count is then per user namespace, so other processes of the same
# user (or other sandboxes) do not use up this sandbox's allowance.
_PROCESS_LIMIT = (f"import resource as _r\n_r.setrlimit(_r.RLIMIT_NPROC, ({MAX_PROCESSES}, {MAX_PROCESSES}))\n"
                  "del _r\n")


class SandboxError(WorkbenchError):
    """The code sandbox cannot run here (bubblewrap missing or user namespaces disabled)."""


def extract_code(text: str) -> str:
    """The last fenced code block (```python preferred), else the whole text."""
    blocks = _BLOCK.findall(text)
    return blocks[-1] if blocks else text


def check_sandbox(sandbox: str, warn: bool = True) -> None:
    """Raise `SandboxError` (naming what to install or pass) unless `sandbox` can run programs here;
    with `warn`, say on stderr that `none` runs submitted code unconfined."""
    if sandbox not in SANDBOXES:
        raise SandboxError(f"--sandbox {sandbox!r}: expected one of {', '.join(SANDBOXES)}")
    if sandbox == "none":
        if warn:
            print("warning: --sandbox none: submitted code runs unconfined (it can read your files, write "
                  "anywhere you can and use the network); use it only for code you trust", file=sys.stderr)
        return
    if not shutil.which("bwrap"):
        raise SandboxError(NO_BUBBLEWRAP)
    try:
        problem = _bwrap_probe()
    except OSError as exc:  # bwrap found on PATH but cannot be executed: no namespace question yet
        raise SandboxError(f"cannot run {shutil.which('bwrap')}: {exc}") from None
    if problem:
        raise SandboxError(f"bubblewrap cannot start a sandbox here ({problem}); user namespaces may be disabled "
                           "(sysctl kernel.unprivileged_userns_clone=1), or pass --sandbox none to run unconfined")


@functools.cache
def _bwrap_probe() -> str:
    """'' when a trivial program runs in the sandbox, else bubblewrap's complaint."""
    passed, detail = _run_program("pass\n", "pass\n", 20.0, 256, "bwrap")
    return "" if passed else detail


def run_tests(code: str, tests: str, timeout: float = 10.0, memory_mb: int = 1024,
              sandbox: str = "bwrap") -> tuple[bool, str]:
    """(passed, detail): passed only when the harness saw every top-level test statement run; detail says
    why not (the test line and exception, the limit hit, how the program ended before the tests did)."""
    return _run_program(code, tests, timeout, memory_mb, sandbox)


_HARNESS = (Path(__file__).with_name("harness.py")).read_text()


def _run_program(answer: str, tests: str, timeout: float, memory_mb: int, sandbox: str) -> tuple[bool, str]:
    program = (_NO_NETWORK + (_PROCESS_LIMIT if sandbox == "bwrap" else "") + _HARNESS).encode()
    marker = secrets.token_hex(8)  # finds an unconfined run's leftover processes
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/tmp",
           "WB_SANDBOX_RUN": marker}
    secret = secrets.token_hex(16)
    with (tempfile.TemporaryDirectory(prefix="wb-sandbox-") as tmp, tempfile.TemporaryFile() as err,
          tempfile.TemporaryFile() as channel, tempfile.TemporaryFile() as payload):
        payload.write(json.dumps({"secret": secret, "channel": channel.fileno(), "answer": answer,
                                  "tests": tests}).encode())
        payload.seek(0)
        path = os.path.join(tmp, "program.py")
        with open(path, "wb") as f:
            f.write(program)
        if sandbox == "bwrap":
            filter_path = os.path.join(tmp, "filter.bpf")
            bpf = seccomp_filter()
            if bpf is not None:
                with open(filter_path, "wb") as f:
                    f.write(bpf)
            with open(path, "rb") as prog, open(filter_path if bpf else os.devnull, "rb") as filt:
                cmd, fds = _bwrap_command(prog.fileno(), filt.fileno() if bpf else None)
                proc = subprocess.Popen(cmd, env=env, stdin=payload, stdout=subprocess.DEVNULL, stderr=err,
                                        pass_fds=[*fds, channel.fileno()], preexec_fn=_limits(timeout, memory_mb))
        else:
            proc = subprocess.Popen([sys.executable, "-I", path], cwd=tmp, env=env, stdin=payload,
                                    stdout=subprocess.DEVNULL, stderr=err, pass_fds=[channel.fileno()],
                                    preexec_fn=_limits(timeout, memory_mb))
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # bwrap's pid 1 dies with it (--die-with-parent), which kills the whole pid namespace
            _kill_group(proc.pid)
            proc.wait()
            return False, f"time limit: killed after {timeout:g}s"
        finally:
            _kill_group(proc.pid)  # stragglers of an unconfined run left in its process group
            if sandbox == "none":
                kill_marked(marker)  # and those that left the group (setsid)
        channel.seek(0)
        record = channel.read(64 << 10).decode("utf-8", "replace")
        return _verdict(record, secret, proc.returncode, _tail(err), memory_mb, sandbox)


def _verdict(record: str, secret: str, returncode: int, stderr: str, memory_mb: int,
             sandbox: str) -> tuple[bool, str]:
    """The harness's record decides; without one, say how the program ended before the tests did."""
    lines = record.splitlines()
    mine = [line[len(secret) + 1:] for line in lines if line.startswith(secret + " ")]
    if len(lines) != len(mine):
        return False, "the answer wrote to the test harness's result channel"
    if len(mine) == 1:
        status, _, detail = mine[0].partition(" ")
        if status == "pass":
            return True, "tests passed"
        if detail.startswith("memory limit:"):  # the harness saw a MemoryError (its type, not any text)
            return False, f"{detail} (address space capped at {memory_mb} MiB)"
        return False, detail
    if returncode < 0 or (sandbox == "bwrap" and returncode > 128):
        signum = -returncode if returncode < 0 else returncode - 128  # bwrap exits 128 + the child's signal
        if signum == signal.SIGXCPU:
            return False, "time limit: CPU time exceeded"
        how = f"was killed by {_signal_name(signum)}" if returncode < 0 else \
            f"exited with status {returncode} (128 + {_signal_name(signum)}: killed by it, or that exit status)"
    else:
        how = f"exited with status {returncode}"
    last = stderr.splitlines()[-1][:300] if stderr else ""
    return False, f"the tests did not finish: the program {how}" + (f"; stderr: {last}" if last else "")


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def kill_marked(marker: str) -> int:
    """SIGKILL this user's processes whose environment holds WB_SANDBOX_RUN=marker (an unconfined run's
    children that left its process group with setsid); returns how many."""
    needle, killed = f"WB_SANDBOX_RUN={marker}".encode(), 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                found = needle in f.read().split(b"\0")
        except OSError:  # gone, or another user's
            continue
        if found:
            try:
                os.kill(int(entry), signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


def _tail(f) -> str:
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - _DETAIL_BYTES))
    return f.read().decode("utf-8", "replace").strip()


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _bwrap_command(program_fd: int, filter_fd: int | None) -> tuple[list[str], list[int]]:
    """The bwrap command line and the directory fds it binds."""
    interpreter = os.path.realpath(sys.executable)
    prefix = os.path.realpath(sys.base_prefix)
    fds = [program_fd]
    binary = shutil.which("bwrap")
    if binary is None:  # never a bare "bwrap": the sandbox's own PATH would find one the user's PATH does not
        raise SandboxError(NO_BUBBLEWRAP)
    cmd = [binary, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
           "--uid", str(NOBODY), "--gid", str(NOBODY), "--disable-userns", "--hostname", "sandbox",
           "--proc", "/proc", "--dev", "/dev"]
    if filter_fd is not None:
        fds.append(filter_fd)
        cmd.extend(["--seccomp", str(filter_fd)])

    def bind(path: str) -> None:
        cmd.extend(["--ro-bind", path, path])

    for lib in ("/usr/lib", "/usr/lib64", "/usr/lib32", "/lib", "/lib64", "/lib32"):
        if os.path.islink(lib):
            cmd.extend(["--symlink", os.readlink(lib), lib])
        elif os.path.isdir(lib):
            bind(lib)
    if not prefix.startswith(("/usr/lib", "/lib")):
        bind(prefix)  # the standard library (/usr for a system Python: its lib/ is already there)
    if not interpreter.startswith(prefix + os.sep):
        bind(interpreter)
    cmd.extend(["--size", str(TMPFS_BYTES), "--tmpfs", "/tmp", "--file", str(program_fd), "/tmp/program.py",
                "--remount-ro", "/", "--chdir", "/tmp", "--", interpreter, "-I", "/tmp/program.py"])
    return cmd, fds


NOBODY = 65534  # the uid inside the sandbox

# seccomp: no new processes (fork, vfork, clone without CLONE_THREAD; clone3 answers ENOSYS so libc falls
# back to clone), threads allowed. RLIMIT_NPROC alone does not hold a caller running as root, which the
# kernel exempts, and the filter also closes the `fork(); setsid()` escape from the time limit.
_ARCH = {"x86_64": (0xC000003E, {"fork": 57, "vfork": 58, "clone": 56, "clone3": 435}, 0x40000000),
         "aarch64": (0xC00000B7, {"clone": 220, "clone3": 435}, None)}
_CLONE_THREAD = 0x00010000


def seccomp_filter(machine: str | None = None) -> bytes | None:
    """The classic-BPF program bwrap's `--seccomp` loads, for this machine's architecture (None: unknown)."""
    import platform
    import struct

    spec = _ARCH.get(machine or platform.machine())
    if spec is None:
        return None
    arch, nr, x32 = spec
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, deny, enosys, kill = 0x7FFF0000, 0x00050000 | 1, 0x00050000 | 38, 0x80000000
    # (code, jump-if-true label, jump-if-false label, k); labels name the return instructions at the end
    prog: list[tuple[int, str | None, str | None, int]] = [(ld, None, None, 4), (jeq, None, "kill", arch),
                                                           (ld, None, None, 0)]
    if x32 is not None:
        prog.append((jge, "deny", None, x32))
    prog += [(jeq, "deny", None, nr[name]) for name in ("fork", "vfork") if name in nr]
    prog += [(jeq, "enosys", None, nr["clone3"]), (jeq, None, "allow", nr["clone"]),
             (ld, None, None, 16), (jset, "allow", "deny", _CLONE_THREAD)]
    labels = {name: len(prog) + i for i, name in enumerate(("allow", "deny", "enosys", "kill"))}
    out = b""
    for i, (code, jt, jf, k) in enumerate(prog):
        jump_true, jump_false = (0 if label is None else labels[label] - i - 1 for label in (jt, jf))
        out += struct.pack("<HBBI", code, jump_true, jump_false, k)
    return out + b"".join(struct.pack("<HBBI", ret, 0, 0, k) for k in (allow, deny, enosys, kill))


def _limits(timeout: float, memory_mb: int):
    def apply() -> None:
        import resource

        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        kill_when_parent_thread_exits()  # the thread waiting on it lives as long as it does
        memory = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        cpu = int(timeout) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
        resource.setrlimit(resource.RLIMIT_NOFILE, (MAX_OPEN_FILES, MAX_OPEN_FILES))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def check_code(content: str | None, tests: str | None, timeout: float, memory_mb: int,
               sandbox: str = "bwrap") -> tuple[bool | None, str]:
    """(verdict, detail) of one answer: None without tests, False for an empty answer, else `run_tests`."""
    if not tests:
        return None, "no tests"
    if not content:
        return False, "empty answer"
    return run_tests(extract_code(content), tests, timeout, memory_mb, sandbox)


async def verify_code(contents: list[str | None], tests: list[str | None], timeout: float = 10.0,
                      memory_mb: int = 1024, workers: int = 2,
                      sandbox: str = "bwrap") -> list[tuple[bool | None, str]]:
    """Verdicts in order; at most `workers` sandboxes run at once. Raises `SandboxError` before running
    anything if the sandbox cannot run here."""
    check_sandbox(sandbox, warn=False)
    gate = asyncio.Semaphore(max(1, workers))

    async def one(c: str | None, t: str | None) -> tuple[bool | None, str]:
        async with gate:
            return await asyncio.to_thread(check_code, c, t, timeout, memory_mb, sandbox)

    return list(await asyncio.gather(*(one(c, t) for c, t in zip(contents, tests, strict=True))))
