"""Starting `wb ARGV` as a job of its own: the one launcher the app (`app.jobs.launch`) and the recipe
runner (`workbench.recipe_run`) share. The child leads its own session (stopped by its process group), its
output goes to the run's `wb.log`, and a launch record (`job.json`: pid, process identity, argv, command,
start time) lets any later reader tell whether that job still runs (`workbench.runfiles.run_state`)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from workbench.runfiles import JOB, LOG, process_identity, read_json, write_atomic


def command_line(argv: list[str]) -> str:
    """The command as a user would type it: `wb dedup data.jsonl --output runs/dd`."""
    return shlex.join(["wb", *map(str, argv)])


def launch_wb(argv: list[str], run_dir: Path, cwd: Path | None = None, log_path: Path | None = None,
              preexec_fn: Callable[[], None] | None = None) -> tuple[subprocess.Popen, dict | None]:
    """Start `wb ARGV` writing into `run_dir` (created), its output appended to `run_dir/wb.log`; return the
    process and the launch record written to `run_dir/job.json`. With `log_path` the output goes there and
    no record is written (the job works in another run's directory, whose own record must stay)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    argv = [str(a) for a in argv]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path or run_dir / LOG, "ab") as log:
        log.write(f"$ {command_line(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", *argv], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=cwd, env=env, start_new_session=True,
                                preexec_fn=preexec_fn)
    if log_path is not None:
        return proc, None
    record = {"pid": proc.pid, "process": process_identity(proc.pid), "argv": argv, "command": command_line(argv),
              "stage": argv[0], "log": LOG, "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
              "returncode": None}
    write_atomic(run_dir / JOB, record)
    return proc, record


def record_exit(run_dir: Path, returncode: int | None) -> None:
    """Keep the job's exit code in its launch record (what tells a failed launch from a lost process)."""
    record = read_json(Path(run_dir) / JOB) or {}
    write_atomic(Path(run_dir) / JOB, {**record, "returncode": returncode})
