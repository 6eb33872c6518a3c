"""`progress.json`: the live state of a run, kept in its directory so anyone can watch it from files.

A long command rewrites the file atomically at most about once a second while it works: state (running,
complete, failed, interrupted), pid, start and update times, the current phase, done / total units, the
rate and ETA, tokens and cost so far, and the last error. The app, `wb runs` and users' scripts read it
with `workbench.runfiles.read_progress` (a run whose process is gone while its file still says "running"
reads as interrupted) and `run_state`. Training metrics stay in `metrics.jsonl`.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from workbench.runfiles import PROGRESS, process_identity, write_atomic

STATES = ("running", "complete", "failed", "interrupted")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


class ProgressFile:
    """The writer of one run's `progress.json`. `update` is cheap to call often: it writes at most once per
    `min_interval` seconds unless `force` is given; `finish` always writes."""

    def __init__(self, run_dir: str | os.PathLike, stage: str, unit: str = "rows", total: int | None = None,
                 min_interval: float = 1.0):
        self.path = Path(run_dir) / PROGRESS
        self.min_interval = min_interval
        self.started = time.time()
        self._last_write = 0.0
        self._rate_mark: tuple[float, int] | None = None  # (time, done) when counting started in this process
        self.state: dict = {
            "state": "running", "stage": stage, "phase": None, "pid": os.getpid(),
            "started_at": _iso(self.started), "updated_at": _iso(self.started), "done": 0 if total else None,
            "total": total, "unit": unit, "rate": None, "eta_seconds": None,
            "usage": {"requests": 0, "prefill_tokens": 0, "sampled_tokens": 0, "trained_tokens": 0,
                      "cost_usd": None},
            "error": None,
            "process": process_identity(os.getpid()),  # so a watcher can tell this process from a pid reuse
        }

    def start(self) -> ProgressFile:
        self._write()
        return self

    def update(self, done: int | None = None, total: int | None = None, phase: str | None = None,
               unit: str | None = None, usage: object | None = None, force: bool = False, **extra: object) -> None:
        """Record progress; `usage` is a `workbench.rundir.Usage` or a dict of its fields (totals so far)."""
        now = time.time()
        s = self.state
        if phase is not None and phase != s["phase"]:
            s["phase"], self._rate_mark, force = phase, None, True
        if unit is not None:
            s["unit"] = unit
        if total is not None:
            s["total"] = total
        if done is not None:
            s["done"] = done
            if self._rate_mark is None:
                self._rate_mark = (now, done)
            t0, d0 = self._rate_mark
            if now - t0 > 0.5 and done > d0:
                s["rate"] = round((done - d0) / (now - t0), 3)
                left = (s["total"] - done) if s["total"] is not None else None
                s["eta_seconds"] = round(left / s["rate"], 1) if left is not None and left >= 0 else None
        if usage is not None:
            s["usage"].update(usage if isinstance(usage, dict) else asdict(usage))  # type: ignore[arg-type]
        s.update(extra)
        if force or now - self._last_write >= self.min_interval:
            self._write(now)

    def finish(self, state: str = "complete", error: str | None = None) -> None:
        """The final state: complete, failed (with the error) or interrupted."""
        self.state["state"] = state
        self.state["error"] = error
        if state == "complete" and self.state["total"] is not None:
            self.state["done"] = self.state["total"]
            self.state["eta_seconds"] = 0.0
        self._write()

    def _write(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.state["updated_at"] = _iso(now)
        self.state["elapsed_seconds"] = round(now - self.started, 3)
        self._last_write = now
        try:
            write_atomic(self.path, self.state, durable=False)
        except OSError:
            pass  # watching a run must never break it (a full disk, a directory removed under it)
