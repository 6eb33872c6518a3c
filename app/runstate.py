"""What a run is doing, read only from files in its directory, so a job launched from a shell, from the
app, or by a previous app session is watched the same way.

Sources, strongest first: `manifest.json` (complete), `progress.json` (the job's own live state, read
with `workbench.progress.read_progress`: a dead pid reads as interrupted), the app's launch record
`.wb-job.json` (pid, exit code, log) and the `.run-incomplete` marker (pid). A launched job that exited
non-zero before it wrote any progress (bad input) is "failed" with the last line of its log as the error.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from app.workspace import JOB, read_json
from workbench.progress import pid_alive, read_progress
from workbench.rundir import INCOMPLETE, MANIFEST

FINISHED = ("complete", "failed", "interrupted", "unreadable")
USAGE_KEYS = ("requests", "prefill_tokens", "sampled_tokens", "trained_tokens", "cost_usd")


@dataclass
class RunState:
    path: str
    stage: str | None = None
    state: str = "unknown"  # running | complete | failed | interrupted | unreadable | unknown
    phase: str | None = None
    done: int | None = None
    total: int | None = None
    unit: str | None = None
    rate: float | None = None
    eta_seconds: float | None = None
    rows_in: int | None = None
    rows_out: int | None = None
    usage: dict = field(default_factory=dict)
    wall_seconds: float | None = None
    started_at: str | None = None
    command: str | None = None
    pid: int | None = None
    error: str | None = None
    extra: dict = field(default_factory=dict)  # stage-specific progress fields (in_flight, failed, truncated...)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def as_row(self) -> dict:
        row = asdict(self)
        usage = row.pop("usage")
        row.pop("extra")
        row.update({k: usage.get(k) for k in USAGE_KEYS})
        return row


def last_log_line(run_dir: Path, name: str = "wb.log") -> str | None:
    """The last non-empty line of the job's log (its one-line error when it failed)."""
    try:
        with open(Path(run_dir) / name, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return None
    return lines[-1] if lines else None


def read_state(run_dir: Path) -> RunState:
    """The run's state from its files; never raises for a corrupt or foreign directory."""
    run_dir = Path(run_dir)
    st = RunState(path=str(run_dir))
    progress = read_progress(run_dir) or {}
    job = read_json(run_dir / JOB) or {}
    unfinished = (run_dir / INCOMPLETE).exists()
    incomplete = (read_json(run_dir / INCOMPLETE) or {}) if unfinished else None
    manifest = None if unfinished else read_json(run_dir / MANIFEST)
    for source in (progress, job):
        st.stage = st.stage or source.get("stage")
        st.started_at = st.started_at or source.get("started_at")
        st.command = st.command or source.get("command")
    for key in ("phase", "done", "total", "unit", "rate", "eta_seconds", "error"):
        setattr(st, key, progress.get(key))
    st.wall_seconds = progress.get("elapsed_seconds")
    known = {f for f in RunState.__dataclass_fields__} | {"state", "pid", "updated_at", "elapsed_seconds"}
    st.extra = {k: v for k, v in progress.items() if k not in known}
    st.usage = dict(progress.get("usage") or {})
    st.pid = progress.get("pid") or job.get("pid") or (incomplete or {}).get("pid")
    if manifest is None and not unfinished and (run_dir / MANIFEST).exists():
        st.state, st.error = "unreadable", f"{run_dir / MANIFEST}: not a readable JSON object"
        return st
    if manifest is not None:
        st.state = "complete" if manifest.get("status", "complete") == "complete" else str(manifest["status"])
        st.stage = manifest.get("stage") or st.stage
        st.rows_in, st.rows_out = manifest.get("rows_in"), manifest.get("rows_out")
        st.usage = {**st.usage, **(manifest.get("usage") or {})}
        st.wall_seconds = manifest.get("wall_seconds")
        st.started_at = manifest.get("started_at") or st.started_at
        st.command = manifest.get("command") or st.command
        return st
    if incomplete is not None:
        st.stage = st.stage or incomplete.get("stage")
    alive = pid_alive(st.pid)
    if progress.get("state") in ("failed", "interrupted") or (progress.get("state") == "complete"):
        st.state = progress["state"]
    elif alive:
        st.state = "running"
    elif job.get("returncode") not in (None, 0):
        st.state = "failed"
        st.error = st.error or last_log_line(run_dir) or f"exit code {job['returncode']}"
    elif progress or incomplete is not None or job:
        st.state = "interrupted"
        st.error = st.error or (last_log_line(run_dir) if job else None)
    return st
