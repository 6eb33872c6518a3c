"""Worker pools: quiet when stopped, and gone when their parent is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

PARENT = textwrap.dedent("""
    import os, signal, sys, time
    from workbench.cli import _terminate
    from workbench.workers import process_pool, stop_pool

    signal.signal(signal.SIGTERM, _terminate)  # as `wb` does

    def work(path):
        with open(path, "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(float(sys.argv[2]))
        return os.getpid()

    pool = process_pool(2)
    futures = [pool.submit(work, sys.argv[1]) for _ in range(2)]
    if sys.argv[3] == "stop":
        time.sleep(1)
        stop_pool(pool)  # what verify_math does when it is done: terminate the workers
        print("stopped", flush=True)
    else:
        time.sleep(600)
""")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for_pids(path: Path, count: int) -> list[int]:
    for _ in range(300):
        if path.exists() and len(path.read_text().split()) >= count:
            return [int(p) for p in path.read_text().split()]
        time.sleep(0.05)
    raise AssertionError(f"the workers did not start: {path.read_text() if path.exists() else ''}")


def _parent(tmp_path: Path, sleep: float, mode: str) -> tuple[subprocess.Popen, Path]:
    pids = tmp_path / "pids.txt"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", PARENT, str(pids), str(sleep), mode], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, pids


def test_workers_die_with_a_sigkilled_parent(tmp_path):
    proc, pids = _parent(tmp_path, 120, "wait")
    workers = _wait_for_pids(pids, 2)
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        for _ in range(200):  # the watchdog polls every 0.5 s; allow 20 s on a loaded machine
            if not any(_alive(p) for p in workers):
                break
            time.sleep(0.1)
        assert not any(_alive(p) for p in workers), "a worker outlived its SIGKILLed parent"
    finally:
        for p in workers:
            if _alive(p):
                os.kill(p, signal.SIGKILL)


def test_stopping_a_pool_prints_no_traceback(tmp_path):
    proc, _ = _parent(tmp_path, 0.1, "stop")  # idle workers, as after a verification pass
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out.strip() == "stopped"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err


def _ignore_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # what a worker deadlocked before its own set-up amounts to


def _sleep_forever() -> int:
    time.sleep(600)
    return os.getpid()


def test_stop_pool_kills_a_worker_that_ignores_sigterm():
    """A worker that never acts on SIGTERM is SIGKILLed after the grace, so nothing waits for it at exit."""
    from workbench.workers import process_pool, stop_pool

    pool = process_pool(1, initializer=_ignore_sigterm)
    pid = pool.submit(os.getpid).result(timeout=60)  # the worker exists and has run its initializer
    pool.submit(_sleep_forever)
    time.sleep(0.2)
    stop_pool(pool, grace=0.5)
    for _ in range(100):  # bounded: the kernel reaps it within moments of the kill
        if not _alive(pid):
            break
        time.sleep(0.05)
    assert not _alive(pid)
