"""Code answers: run the extracted program plus the record's tests in a sandboxed subprocess.

Limits: wall time (`timeout`), CPU time, address space (`memory_mb`), file size; no network (a new network
namespace via `unshare -rn` when the kernel allows it, and `socket` disabled in the program either way);
a fresh temporary working directory; isolated interpreter (`python -I`). Exit 0 means the tests passed.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)
_NO_NETWORK = (
    "import socket as _s\n"
    "class _Blocked(_s.socket):\n"
    "    def __init__(self, *a, **k):\n        raise OSError('network access is disabled in the sandbox')\n"
    "def _blocked(*a, **k):\n    raise OSError('network access is disabled in the sandbox')\n"
    "_s.socket = _Blocked\n_s.create_connection = _s.getaddrinfo = _blocked\ndel _s\n"
)


def extract_code(text: str) -> str:
    """The last fenced code block (```python preferred), else the whole text."""
    blocks = _BLOCK.findall(text)
    return blocks[-1] if blocks else text


@functools.cache
def _has_netns() -> bool:
    if not shutil.which("unshare"):
        return False
    try:
        return subprocess.run(["unshare", "-rn", "true"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _limits(timeout: float, memory_mb: int):
    def apply() -> None:
        import resource

        os.setsid()
        memory = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        cpu = int(timeout) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def run_tests(code: str, tests: str, timeout: float = 10.0, memory_mb: int = 1024) -> tuple[bool, str]:
    """(passed, detail): detail names the limit hit or the last line of stderr."""
    with tempfile.TemporaryDirectory(prefix="wb-sandbox-") as tmp:
        path = os.path.join(tmp, "program.py")
        with open(path, "w") as f:
            f.write(_NO_NETWORK + code + "\n\n" + tests + "\n")
        cmd = [sys.executable, "-I", path]
        if _has_netns():
            cmd = ["unshare", "-rn", *cmd]
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, preexec_fn=_limits(timeout, memory_mb))
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return False, f"time limit: killed after {timeout:g}s"
    text = err.decode("utf-8", "replace").strip()
    if proc.returncode == 0:
        return True, "tests passed"
    if "MemoryError" in text or proc.returncode in (-signal.SIGKILL, -signal.SIGSEGV) and "Error" not in text:
        return False, f"memory limit: exceeded {memory_mb} MiB"
    if proc.returncode == -signal.SIGXCPU:
        return False, "time limit: CPU time exceeded"
    return False, (text.splitlines()[-1] if text else f"exit code {proc.returncode}")[:500]


def check_code(content: str | None, tests: str | None, timeout: float, memory_mb: int) -> tuple[bool | None, str]:
    if not tests:
        return None, "no tests"
    if not content:
        return False, "empty answer"
    return run_tests(extract_code(content), tests, timeout, memory_mb)


async def verify_code(contents: list[str | None], tests: list[str | None], timeout: float = 10.0,
                      memory_mb: int = 1024, workers: int = 2) -> list[tuple[bool | None, str]]:
    """Verdicts in order; at most `workers` sandboxes run at once."""
    gate = asyncio.Semaphore(max(1, workers))

    async def one(c: str | None, t: str | None) -> tuple[bool | None, str]:
        async with gate:
            return await asyncio.to_thread(check_code, c, t, timeout, memory_mb)

    return list(await asyncio.gather(*(one(c, t) for c, t in zip(contents, tests, strict=True))))
