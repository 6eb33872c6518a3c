"""The app's Stop signals a job only after checking that its pid is still the job's process."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from app import jobs
from workbench.runfiles import JOB, PROGRESS, pid_alive, process_identity, run_state, write_atomic


@pytest.fixture
def sleeper():
    """A process this test starts and stops: it stands in for whatever now holds a recorded pid."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


def _wait_gone(proc: subprocess.Popen) -> int | None:
    for _ in range(100):  # bounded: 10 s
        if proc.poll() is not None:
            return proc.returncode
        time.sleep(0.1)
    return None


def test_stop_refuses_a_pid_that_now_belongs_to_another_process(tmp_path, sleeper):
    identity = process_identity(sleeper.pid)
    assert identity and identity["start"] and "time.sleep(120)" in " ".join(identity["cmdline"])
    # a record copied from another machine (or from before a reboot): same pid, another start time
    write_atomic(tmp_path / JOB, {"pid": sleeper.pid, "returncode": None, "argv": ["dedup"],
                                  "process": {"start": "ticks:1", "cmdline": ["python", "-m", "workbench.cli"]}})
    said = jobs.stop(tmp_path, grace_seconds=0.5)
    assert said.startswith(f"not running (pid {sleeper.pid} is now another process:")
    assert sleeper.poll() is None and pid_alive(sleeper.pid)
    assert run_state(tmp_path).state == "interrupted"  # the reused pid does not make the run look alive
    # a progress file of a run started from a shell, with no identity recorded: refused too
    (tmp_path / JOB).unlink()
    write_atomic(tmp_path / PROGRESS, {"state": "running", "pid": sleeper.pid, "stage": "dedup"})
    assert jobs.stop(tmp_path).startswith("not stopped:") and sleeper.poll() is None


def test_stop_signals_the_job_whose_identity_matches(tmp_path, sleeper):
    write_atomic(tmp_path / JOB, {"pid": sleeper.pid, "returncode": None, "argv": ["dedup"],
                                  "process": process_identity(sleeper.pid)})
    assert run_state(tmp_path).state == "running"
    assert jobs.stop(tmp_path, grace_seconds=10) == "stopped"
    assert _wait_gone(sleeper) == -15  # SIGTERM


def test_a_launch_record_taken_before_exec_still_names_the_running_job(tmp_path, sleeper):
    """The app records the identity right after fork, when the child's command line is still empty or the
    launcher's: the start time alone decides, so the job reads as running (not interrupted) and Stop works."""
    identity = {**process_identity(sleeper.pid), "cmdline": []}
    write_atomic(tmp_path / JOB, {"pid": sleeper.pid, "returncode": None, "argv": ["dedup"], "process": identity})
    assert pid_alive(sleeper.pid, identity) and run_state(tmp_path).state == "running"
    assert jobs.stop(tmp_path, grace_seconds=10) == "stopped"
