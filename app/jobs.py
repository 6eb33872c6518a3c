"""Jobs the app starts: `wb ...` subprocesses that outlive the browser tab.

A job runs in its own session (`start_new_session=True`) with stdout and stderr going to `wb.log` in its
run directory, and a launch record `.wb-job.json` (pid, argv, command, exit code) beside it. The app
reads everything else from the run directory (`workbench.runfiles.run_state`), so a reload, a closed tab
or a restarted app re-attaches to the same job. Stop sends SIGTERM to the job's process group (the CLI unwinds and
removes its temporary files) and SIGKILL after a grace period.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from workbench.errors import InputError
from workbench.runfiles import JOB, LOG, MANIFEST, pid_alive, read_json, run_state, write_atomic


def command_line(argv: list[str]) -> str:
    """The command as a user would type it: `wb dedup data.jsonl --output runs/dd`."""
    return shlex.join(["wb", *map(str, argv)])


def launch(argv: list[str], run_dir: Path, cwd: Path | None = None) -> int:
    """Start `wb ARGV` writing into `run_dir`; return its pid. Refuses a directory with a live job."""
    run_dir = Path(run_dir)
    record = read_json(run_dir / JOB) or {}
    if pid_alive(record.get("pid")):
        raise InputError(f"{run_dir}: a job is already running there (pid {record['pid']}); stop it first")
    if (run_dir / MANIFEST).exists():
        raise InputError(f"{run_dir}: holds a finished run; choose another output directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    argv = [str(a) for a in argv]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(run_dir / LOG, "ab") as log:
        log.write(f"$ {command_line(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", *argv], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=cwd, env=env, start_new_session=True)
    record = {"pid": proc.pid, "argv": argv, "command": command_line(argv), "stage": argv[0], "log": LOG,
              "started_at": datetime.now(UTC).isoformat(timespec="seconds"), "returncode": None}
    write_atomic(run_dir / JOB, record)
    # reap the child (else it lingers as a zombie of the app) and keep its exit code in the record
    threading.Thread(target=_reap, args=(proc, run_dir / JOB, record), daemon=True).start()
    return proc.pid


def _reap(proc: subprocess.Popen, path: Path, record: dict) -> None:
    record = {**record, "returncode": proc.wait()}
    try:
        write_atomic(path, record)
    except OSError:
        pass  # the run directory was removed meanwhile


def stop(run_dir: Path, grace_seconds: float = 5.0) -> str:
    """SIGTERM the job's process group, SIGKILL it after `grace_seconds`; return what happened."""
    pid = run_state(run_dir).pid
    if not pid_alive(pid):
        return "not running"
    # a job the app launched leads its own process group; one started from a shell is signalled alone
    kill = os.killpg if os.getpgid(pid) == pid else os.kill
    try:
        kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "not running"
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return "stopped"
        time.sleep(0.1)
    try:
        kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return "stopped"
    return "killed"


def read_log(run_dir: Path, max_bytes: int = 20_000) -> str:
    """The end of the job's log ('' when there is none)."""
    try:
        with open(Path(run_dir) / LOG, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""
