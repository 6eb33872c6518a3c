"""Worker processes that behave: every process pool in the project comes from `process_pool`.

A pool's workers are forked from the `wb` process, so without care they inherit its SIGTERM handler
(which raises KeyboardInterrupt, so a pool that terminates its workers printed tracebacks) and they
outlive a parent that is SIGKILLed (a `wb mix run` left ~540 MB workers behind). Workers made here
restore the default SIGTERM action, ignore Ctrl-C (the parent handles it and stops the pool), and exit
as soon as their parent is gone.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

WATCH_SECONDS = 0.5


def die_with_parent(parent_pid: int, interval: float = WATCH_SECONDS) -> None:
    """Make this process exit once `parent_pid` is no longer its parent (the parent died, even by SIGKILL).

    A watchdog thread polls `getppid()`; Linux's PR_SET_PDEATHSIG is not used because it fires when the
    parent *thread* that forked us exits, and pools fork from short-lived threads."""
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def kill_when_parent_thread_exits() -> None:
    """PR_SET_PDEATHSIG=SIGKILL (Linux; a no-op elsewhere), for a child whose forking thread waits on it
    for its whole life, like a subprocess run from `preexec_fn`."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def quiet_signals() -> None:
    """Default SIGTERM (die silently when the pool is stopped) and ignore SIGINT (the parent owns Ctrl-C)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _init_worker(parent_pid: int, initializer: Callable[..., object] | None, initargs: tuple) -> None:
    quiet_signals()
    die_with_parent(parent_pid)
    if initializer is not None:
        initializer(*initargs)


class WorkerPool(ProcessPoolExecutor):
    """A process pool whose `with` block, left by an exception (Ctrl-C, SIGTERM, an error), stops the
    workers at once instead of waiting for their tasks (they ignore SIGINT, so nothing else would)."""

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            stop_pool(self)
            return False
        return super().__exit__(exc_type, exc, tb)


def process_pool(workers: int, initializer: Callable[..., object] | None = None,
                 initargs: tuple = ()) -> WorkerPool:
    """A pool of `workers` processes (at least one) that ignore the CLI's signal handlers and die with
    this process; `initializer(*initargs)` runs in each worker after that."""
    return WorkerPool(max_workers=max(1, workers), initializer=_init_worker,
                      initargs=(os.getpid(), initializer, initargs))


def stop_pool(pool: ProcessPoolExecutor, grace: float = 2.0) -> None:
    """Stop a pool now: terminate its workers (a stuck task must not outlive the job), SIGKILL any still alive
    after `grace` seconds, and cancel the rest. The kill matters: a worker forked from a many-threaded parent
    can deadlock before it installs its own SIGTERM action, and then ignores SIGTERM (the parent's handler
    is Python-level and never runs); the pool's manager thread would wait for it at exit forever."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join(grace)
    pool.shutdown(wait=False, cancel_futures=True)
