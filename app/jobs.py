"""Jobs the app starts: `wb ...` subprocesses that outlive the browser tab.

A job runs in its own session (`start_new_session=True`) with stdout and stderr going to `wb.log` in its
run directory, and a launch record `.wb-job.json` (pid, argv, command, exit code) beside it. The app
reads everything else from the run directory (`workbench.runfiles.run_state`), so a reload, a closed tab
or a restarted app re-attaches to the same job. Stop sends SIGTERM to the job's process group (the CLI unwinds and
removes its temporary files) and SIGKILL after a grace period, each only after checking that the pid is still
the job's process (start time and command line, recorded at launch): a pid the system reused after a reboot,
or one in a copied workspace, belongs to another process that must not be signalled.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import threading
import time
from pathlib import Path

from workbench.errors import InputError
from workbench.launch import (
    command_line as command_line,  # re-exported: the pages show jobs.command_line(argv)
)
from workbench.launch import launch_wb, record_exit
from workbench.runfiles import (
    INCOMPLETE,
    JOB,
    LOG,
    MANIFEST,
    PROGRESS,
    pid_alive,
    process_identity,
    read_json,
)


def launch(argv: list[str], run_dir: Path, cwd: Path | None = None, resume: bool = False) -> int:
    """Start `wb ARGV` writing into `run_dir`; return its pid. Refuses a directory with a live job, and one
    holding a finished run unless `resume` (the same command run again: the CLI resumes an unfinished run
    and retries a finished one's failed units)."""
    run_dir = Path(run_dir)
    record = read_json(run_dir / JOB) or {}
    if pid_alive(record.get("pid"), record.get("process")):
        raise InputError(f"{run_dir}: a job is already running there (pid {record['pid']}); stop it first")
    if (run_dir / MANIFEST).exists() and not resume:
        raise InputError(f"{run_dir}: holds a finished run; choose another output directory")
    proc, _ = launch_wb(argv, run_dir, cwd)
    # reap the child (else it lingers as a zombie of the app) and keep its exit code in the record
    threading.Thread(target=_reap, args=(proc, run_dir), daemon=True).start()
    return proc.pid


def _reap(proc: subprocess.Popen, run_dir: Path) -> None:
    code = proc.wait()
    try:
        record_exit(run_dir, code)
    except (OSError, InputError):
        pass  # the run directory was removed (or its record spoiled) meanwhile


def recorded_argv(run_dir: Path) -> list[str] | None:
    """The argv after `wb` that started the run: the app's launch record, else the manifest's or the
    unfinished run's marker (a run started from a shell); None when no file records it."""
    run_dir = Path(run_dir)
    for name, skip in ((JOB, 0), (MANIFEST, 1), (INCOMPLETE, 1)):
        try:
            argv = (read_json(run_dir / name) or {}).get("argv")
        except InputError:
            continue
        if isinstance(argv, list) and len(argv) > skip and all(isinstance(a, str) for a in argv):
            return argv[skip:]  # the manifest and marker keep the program name first
    return None


def job_alive(run_dir: Path) -> bool:
    """Whether the process the app launched for this run still lives (a run can read as finished while its
    process is still exiting; Resume must wait for it)."""
    try:
        record = read_json(Path(run_dir) / JOB) or {}
    except InputError:
        return False
    return record.get("returncode") is None and pid_alive(record.get("pid"), record.get("process"))


def relaunch(run_dir: Path) -> int:
    """Run the run's own command again on the same directory (Resume, Retry failed units): the CLI resumes
    an interrupted or failed run and retries the failed units of one that kept a ledger. Return the pid;
    raise `InputError` when no file records the command."""
    argv = recorded_argv(run_dir)
    if not argv:
        raise InputError(f"{run_dir}: no launch record, manifest or marker names its command; re-run it from a shell")
    return launch(argv, run_dir, resume=True)


def stop(run_dir: Path, grace_seconds: float = 5.0) -> str:
    """SIGTERM the job's process group, SIGKILL it after `grace_seconds`; return what happened. Nothing is
    signalled unless the pid is still the process its record names (see the module docstring)."""
    target = _job_process(Path(run_dir))
    if isinstance(target, str):
        return target
    pid, identity = target
    try:
        # a job the app launched leads its own process group; one started from a shell is signalled alone
        kill = os.killpg if os.getpgid(pid) == pid else os.kill
        kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "not running"
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if not pid_alive(pid, identity):
            return "stopped"
        time.sleep(0.1)
    if not pid_alive(pid, identity):  # checked again: the pid may have been reused during the grace period
        return "stopped"
    try:
        kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return "stopped"
    return "killed"


def _job_process(run_dir: Path) -> tuple[int, dict] | str:
    """(pid, identity) of the run's live process from the launch record, else from `progress.json` (a run
    started from a shell); or why there is nothing to signal."""
    for name, live in ((JOB, lambda r: r.get("returncode") is None), (PROGRESS, lambda r: r.get("state") == "running")):
        try:
            record = read_json(run_dir / name) or {}
        except InputError:
            continue
        pid = record.get("pid")
        if not live(record) or not isinstance(pid, int) or not pid_alive(pid):
            continue
        identity = record.get("process")
        if not isinstance(identity, dict):
            return f"not stopped: {run_dir / name} records no process identity for pid {pid}, so it cannot be " \
                   "told from another process with that pid; stop it from a shell if it is this job"
        if not pid_alive(pid, identity):
            return f"not running (pid {pid} is now another process: {shlex.join(_cmdline(pid))})"
        return pid, identity
    return "not running"


def _cmdline(pid: int) -> list[str]:
    return (process_identity(pid) or {}).get("cmdline") or ["?"]


def read_log(run_dir: Path, max_bytes: int = 20_000) -> str:
    """The end of the job's log ('' when there is none)."""
    try:
        with open(Path(run_dir) / LOG, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""
