"""SIGKILL at any moment, re-run the same command: no unit lost, exactly one row per unit."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from distill_data.pipeline import distill
from tests.distill_data.distill_helpers import fast_config, write_prompts
from workbench.errors import RunFailed
from workbench.runfiles import INCOMPLETE, MANIFEST, run_state

ROOT = Path(__file__).resolve().parents[2]


def _done_units(ledger: Path) -> set[tuple[str, int]]:
    if not ledger.exists():
        return set()
    try:
        with sqlite3.connect(ledger) as conn:
            return set(conn.execute("SELECT prompt_id, sample_index FROM units WHERE status='ok'").fetchall())
    except sqlite3.OperationalError:
        return set()


def test_sigkill_then_resume(tmp_path, mock):
    texts = [f"kill {i} [slow:0.1]" for i in range(40)]
    src = write_prompts(tmp_path / "p.jsonl", texts)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "workbench.cli", "distill", src, "--output", str(out), "--model", "mock",
           "--base-url", mock.url, "--n", "2", "--max-concurrency", "4", "--progress-seconds", "0"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(_done_units(out / "ledger.sqlite")) < 16 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    before = _done_units(out / "ledger.sqlite")
    assert 16 <= len(before) < 80, proc.stderr.read().decode()
    assert (out / INCOMPLETE).exists() and not (out / MANIFEST).exists()  # readers refuse the half run

    manifest = distill(fast_config(src, out, mock.url, n=2, max_concurrency=4))
    df = pl.read_parquet(out / "data.parquet")
    assert df.height == 80 and df.select("prompt_id", "sample_index").n_unique() == 80
    assert set(df["status"]) == {"ok"} and manifest["status_counts"]["ok"] == 80
    # Units finished before the kill were not generated again: their prompt was requested exactly once.
    for prompt_id in {p for p, _ in before}:
        assert mock.counts[texts[int(prompt_id)]] == 1
    # Only units in flight at the kill were sent twice (at most the concurrency, one request per prompt).
    assert sum(mock.counts[t] for t in texts) <= 40 + 4

    again = distill(fast_config(src, out, mock.url, n=2))  # the same command on a finished run: no requests
    assert sum(mock.counts[t] for t in texts) <= 44 and again["status_counts"]["ok"] == 80


def test_changed_sampling_params_are_new_units(tmp_path, mock):
    src = write_prompts(tmp_path / "p.jsonl", ["key a", "key b"])
    distill(fast_config(src, tmp_path / "run", mock.url))
    distill(fast_config(src, tmp_path / "run", mock.url, base_url=[mock.url, mock.url], max_concurrency=1))
    assert mock.counts["key a"] == 1  # endpoints and concurrency are not in the key
    distill(fast_config(src, tmp_path / "run", mock.url, temperature=0.1))
    assert mock.counts["key a"] == 2  # sampling parameters are


def test_failed_units_are_retried_by_a_rerun(tmp_path, mock):
    src = write_prompts(tmp_path / "p.jsonl", ["rerun [500:4]"])
    for _ in range(2):  # every unit failed: the run is failed (not complete) and keeps its ledger
        with pytest.raises(RunFailed, match=r"every unit failed \(1 of 1; first error: 500"):
            distill(fast_config(src, tmp_path / "run", mock.url, max_attempts=2))
        st = run_state(tmp_path / "run")
        assert st.state == "failed" and st.error.startswith("every unit failed")
        assert not (tmp_path / "run" / MANIFEST).exists()
    second = distill(fast_config(src, tmp_path / "run", mock.url, max_attempts=2))
    assert second["status_counts"] == {"ok": 1, "truncated": 0, "failed": 0}
