"""The app's job queue: jobs wait in `.wb-queue.json` in the workspace and start as slots free up, at most
`max_jobs` of the queue's jobs at once (Settings, `.wb-ui.yaml`).

The queue file is rewritten atomically under an exclusive `flock` on `.wb-queue.lock`, so two browser tabs
(or two app processes over one workspace) never start the same job twice. `pump` starts what fits; a
launcher thread calls it every second while jobs wait or run and ends when none do, and every page calls
`ensure_launcher`, so a restarted app picks the queue up where it was. A job's state after it starts is
its run directory's (`workbench.runfiles.run_state`); Cancel drops a waiting job or stops a running one
through `app.jobs.stop`, which signals only the process the queue itself started.

(Not `app/queue.py`: Streamlit puts `app/` on sys.path, where that name would hide the standard library's.)
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from app import jobs, settings
from app.workspace import run_name, safe_path
from workbench.errors import InputError
from workbench.runfiles import read_json, run_state, write_atomic

QUEUE = ".wb-queue.json"
LOCK = ".wb-queue.lock"
DEFAULT_MAX_JOBS = 2
TICK_SECONDS = 1.0
KEEP_FINISHED = 50  # finished entries kept for the table; older ones are dropped when a job is added


def max_jobs(root: Path) -> int:
    """The concurrency limit from the workspace's settings (`max_jobs`), default 2."""
    value = settings.load(root).get("max_jobs", DEFAULT_MAX_JOBS)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{Path(root) / settings.SETTINGS}: max_jobs must be a whole number of at least 1; "
                         f"found {value!r}")
    return value


def set_max_jobs(root: Path, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"max_jobs {value!r}: must be a whole number of at least 1")
    current = settings.load(root)
    settings.save(root, {**current, "max_jobs": value})


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    with open(Path(root) / LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _read(root: Path) -> list[dict]:
    record = read_json(Path(root) / QUEUE) or {}
    entries = record.get("jobs", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "id" in e and "run" in e for e in entries):
        raise InputError(f"{Path(root) / QUEUE}: expected `jobs` to be a list of {{id, run, argv, state}}; "
                         "delete the file to start an empty queue")
    return entries


def _write(root: Path, entries: list[dict]) -> None:
    write_atomic(Path(root) / QUEUE, {"jobs": entries})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def status(root: Path, entry: dict) -> str:
    """queued, cancelled, error (it could not start), or the run's own state once it started."""
    if entry["state"] != "launched":
        return entry["state"]
    return run_state(safe_path(root, entry["run"])).state


def enqueue(root: Path, argv: list[str], run_dir: Path, resume: bool = False) -> dict:
    """Add `wb ARGV` writing `run_dir` to the end of the queue and start what fits; return its entry.
    Raise `InputError` when a waiting or running job of the queue already writes that directory."""
    name = run_name(root, run_dir)
    with _locked(root):
        entries = _read(root)
        busy = [e for e in entries if e["run"] == name and status(root, e) in ("queued", "running")]
        if busy:
            raise InputError(f"{name}: a job of the queue already writes there ({status(root, busy[0])}); "
                             "choose another --output")
        finished = [e for e in entries if status(root, e) not in ("queued", "running")]
        drop = {e["id"] for e in finished[: max(0, len(finished) - KEEP_FINISHED)]}
        entry = {"id": uuid.uuid4().hex[:12], "run": name, "argv": [str(a) for a in argv],
                 "command": jobs.command_line(argv), "resume": resume, "state": "queued", "error": None,
                 "added_at": _now(), "launched_at": None}
        _write(root, [e for e in entries if e["id"] not in drop] + [entry])
    pump(root)
    ensure_launcher(root)
    return entry


def pump(root: Path) -> list[str]:
    """Start waiting jobs, oldest first, while fewer than `max_jobs` of the queue's jobs run; return the
    names of the runs started. A job that cannot start is marked `error` with the reason."""
    started, changed = [], False
    with _locked(root):
        entries = _read(root)
        running = sum(status(root, e) == "running" for e in entries)
        limit = max_jobs(root)
        for entry in entries:
            if running >= limit:
                break
            if entry["state"] != "queued":
                continue
            changed = True
            try:
                jobs.launch(entry["argv"], safe_path(root, entry["run"]), resume=bool(entry.get("resume")))
            except (InputError, OSError) as exc:
                entry.update(state="error", error=str(exc))
                continue
            entry.update(state="launched", launched_at=_now())
            running += 1
            started.append(entry["run"])
        if changed:
            _write(root, entries)
    return started


def cancel(root: Path, entry_id: str) -> str:
    """Drop a waiting job, or stop a running one (SIGTERM to the process group the queue started); return
    what happened."""
    with _locked(root):
        entries = _read(root)
        entry = next((e for e in entries if e["id"] == entry_id), None)
        if entry is None:
            return "no such job in the queue"
        if entry["state"] == "queued":
            entry["state"] = "cancelled"
            _write(root, entries)
            return f"{entry['run']}: cancelled before it started"
    if entry["state"] == "launched":
        return f"{entry['run']}: {jobs.stop(safe_path(root, entry['run']))}"
    return f"{entry['run']}: {entry['state']}, nothing to cancel"


def clear_finished(root: Path) -> int:
    """Remove the entries that are neither waiting nor running; return how many."""
    with _locked(root):
        entries = _read(root)
        keep = [e for e in entries if status(root, e) in ("queued", "running")]
        _write(root, keep)
    return len(entries) - len(keep)


def rows(root: Path) -> list[dict]:
    """The queue as the Runs page shows it: position, run, status, command, error, times."""
    try:
        entries = _read(root)
    except InputError as exc:
        return [{"position": None, "run": QUEUE, "status": "unreadable", "command": "", "error": str(exc)}]
    out, waiting = [], 0
    for e in entries:
        state = status(root, e)
        waiting += state == "queued"
        out.append({"id": e["id"], "position": waiting if state == "queued" else None, "run": e["run"],
                    "status": state, "command": e.get("command"), "added_at": e.get("added_at"),
                    "launched_at": e.get("launched_at"), "error": e.get("error")})
    return out


def _active(root: Path) -> bool:
    try:
        return any(status(root, e) in ("queued", "running") for e in _read(root))
    except InputError:
        return False


_launchers: dict[str, threading.Thread] = {}
_guard = threading.Lock()


def ensure_launcher(root: Path) -> bool:
    """Start this process's launcher thread for the workspace if jobs wait and none runs; return whether
    one runs now. The thread pumps every second and ends when nothing waits or runs."""
    key = str(Path(root).resolve())
    with _guard:
        thread = _launchers.get(key)
        if thread is not None and thread.is_alive():
            return True
        if not (Path(root) / QUEUE).exists() or not _active(root):
            return False
        thread = threading.Thread(target=_launcher, args=(Path(root),), name=f"wb-queue {key}", daemon=True)
        _launchers[key] = thread
        thread.start()
        return True


def _launcher(root: Path) -> None:
    while _active(root):  # bounded: ends when the queue holds nothing waiting or running
        try:
            pump(root)
        except (InputError, OSError):
            return  # an unreadable queue or settings file: the page shows why; the next page view retries
        time.sleep(TICK_SECONDS)
