"""A run whose every request failed is failed, not complete; a dead endpoint ends a run in bounded time;
SIGTERM and Ctrl-C stop `wb eval` within seconds, every asyncio task unwound."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.net import free_port
from workbench.cli import main
from workbench.runfiles import INCOMPLETE, MANIFEST, PRODUCT, read_progress, run_state

FAST_RETRIES = ("--max-attempts", "3", "--retry-base", "0.05", "--retry-max", "0.2")


def _bench(tmp_path: Path, marker: str = "") -> Path:
    path = tmp_path / "toy.jsonl"
    path.write_text("".join(json.dumps({"question": f"q{i} {marker}", "gold": str(i)}) + "\n" for i in range(6)))
    return path


def _args(url: str, bench: Path, out: Path, *flags: str) -> list[str]:
    return ["eval", "--base-url", url, "--model", "m", "--benchmark", str(bench), "--prompt-field", "question",
            "--answer-field", "gold", "--verify", "exact", "--progress-seconds", "0", "--output", str(out), *flags]


def test_a_dead_endpoint_fails_the_run_with_one_line(tmp_path, capsys):
    out = tmp_path / "ev"
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    assert main(_args(dead, _bench(tmp_path), out, *FAST_RETRIES)) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("wb eval: error: every sample failed (6 of 6; first error: every endpoint has been failing")
    assert "--max-attempts 3" in err and "connection error" in err
    st = run_state(out)
    assert st.state == "failed" and st.error.startswith("every sample failed (6 of 6")
    assert read_progress(out)["state"] == "failed"
    assert (out / INCOMPLETE).exists() and not (out / MANIFEST).exists() and not (out / PRODUCT).exists()


def test_every_request_rejected_is_a_failed_run_and_a_rerun_retries_it(tmp_path, mock, capsys):
    out = tmp_path / "ev"
    assert main(_args(mock.url, _bench(tmp_path, "[400]"), out)) == 1  # a 400 on every request: wrong model
    assert "every sample failed (6 of 6; first error: 400" in capsys.readouterr().err
    assert run_state(out).state == "failed"
    # the cause fixed (the server now answers), the same command resumes, retries every unit and completes
    mock.script = lambda text, request: text.replace("[400]", "[reply:#### 1]")
    assert main(_args(mock.url, _bench(tmp_path, "[400]"), out)) == 0
    assert run_state(out).state == "complete" and not (out / INCOMPLETE).exists()
    assert "1 samples failed" not in capsys.readouterr().out


def _start(tmp_path: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    dead = f"http://127.0.0.1:{free_port()}/v1"
    # default retries: on its own the run would probe the dead endpoint for about two minutes
    return subprocess.Popen([sys.executable, "-m", "workbench.cli", *_args(dead, _bench(tmp_path), out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_exit(proc: subprocess.Popen, seconds: float) -> int | None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # bounded poll; a generous bound, not a speed claim
        if proc.poll() is not None:
            return proc.returncode
        time.sleep(0.2)
    return None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_eval_against_a_dead_endpoint(tmp_path, signum):
    out = tmp_path / "ev"
    proc = _start(tmp_path, out)
    try:
        for _ in range(600):  # up to 120 s for the interpreter to start and the run to begin requesting
            progress = read_progress(out) if out.exists() else None
            # the ledger exists once generation began; a run stopped before that leaves nothing to resume
            # and removes its directory, as it should (under load that can take longer than the sleep below)
            started = progress and progress.get("state") == "running" and (out / "ledger.sqlite").exists()
            if started or proc.poll() is not None:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(2.0)  # let requests fail and the endpoint go down: workers wait in backoff and on the probe
        proc.send_signal(signum)
        rc = _wait_exit(proc, 30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    err = proc.stderr.read()
    assert rc == 130, err
    assert err.strip().splitlines()[-1] == "wb eval: interrupted"
    assert "Task was destroyed" not in err and "Traceback" not in err
    assert run_state(out).state == "interrupted"
