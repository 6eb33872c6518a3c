"""`progress.json`: the live state of a run, kept in its directory so anyone can watch it from files.

A long command rewrites the file atomically at most about once a second while it works: state (running,
complete, failed, interrupted), pid, start and update times, the current phase, done / total units, the
rate and ETA, tokens and cost so far, and the last error. The app, `wb runs` and users' scripts read it
with `read_progress`, which reports a run whose process is gone while its file still says "running" as
interrupted (a SIGKILL leaves no chance to write anything). Training metrics stay in `metrics.jsonl`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

PROGRESS = "progress.json"
STATES = ("running", "complete", "failed", "interrupted")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _write_atomic(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    os.replace(tmp, path)


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
            _write_atomic(self.path, self.state)
        except OSError:
            pass  # watching a run must never break it (a full disk, a directory removed under it)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except (OverflowError, ValueError):
        return False
    # a zombie (our own child that exited and was not reaped yet) is not running
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def read_progress(run_dir: str | os.PathLike) -> dict | None:
    """The run's progress, or None when it has no (readable) `progress.json`. A run whose file says
    running but whose process is gone reads as interrupted."""
    path = Path(run_dir) / PROGRESS
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(state, dict):
        return None
    if state.get("state") == "running" and not pid_alive(state.get("pid")):
        state["state"] = "interrupted"
        state["error"] = state.get("error") or f"process {state.get('pid')} is gone"
    return state
