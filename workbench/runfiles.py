"""The run-directory contract in one place: the name of every file a run holds, the one JSON reader and the
one atomic writer for those files, and `run_state`, the one reading of a run's state from them that `wb runs`,
`wb lineage`, the app and scripts share.

A run's state comes from its marker `.run-incomplete`, `manifest.json`, `progress.json` and the launcher's
record `.wb-job.json`. The first rule that applies decides:

1. A manifest and no marker: **complete**. A stale progress file (failed, interrupted, or running under a
   dead pid) does not change that; a progress file running under a live pid does, to **running** (a step
   at work in a finished run's directory, such as `wb mix run` in its plan), and so does a launch record
   whose process lives and did not write the progress file (the command launched again on its run).
2. Any of the four files that cannot be read, is not a JSON object, has a field of the wrong type (a
   `usage` that is a list, a `pid` that is text) or is a progress file without a `state`: **unreadable**;
   the error names the file and the field. One corrupt file lists its run as unreadable, never breaks a
   listing of the workspace.
3. Otherwise the run is unfinished (only a manifest says complete), and:
   a. progress says failed: **failed**, with its error; says interrupted: **interrupted** (unless the
      command was launched again and its process lives: **running**);
   b. a live process (progress running, the marker's pid, or the launch record's while it has no exit
      code): **running**;
   c. the launcher recorded a non-zero exit code: **failed**, with the last line of `wb.log` (bad input
      fails before any progress is written);
   d. any of the four files: **interrupted** (the process is gone; a progress file that says complete
      beside no manifest is a redo killed as it began).
4. None of them: **unknown**.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from workbench.errors import InputError

# What every run directory holds (`workbench.rundir.RunDir` writes them).
MANIFEST = "manifest.json"
INCOMPLETE = ".run-incomplete"  # present from the start of a run until its manifest is written
LOCK = ".run-lock"  # flock'ed by the run writing the directory, for its life; holds that run's pid
PROGRESS = "progress.json"
PRODUCT = "data.parquet"
PRODUCT_JSONL = "data.jsonl"  # `wb convert --format jsonl`
SHARDS = "data"  # a product written as data/*.parquet
PREVIOUS = ".previous"  # a redone run's old product, kept until the new run finishes
# Products that stages share with the readers downstream (lineage, the app, trainers).
REMOVED = "removed.parquet"  # dropped rows with `reason` (curate, dedup, decontam, prefs)
SFT = "sft.parquet"  # distill's messages rows
METRICS = "metrics.jsonl"  # training curves
SIGNATURES = "signatures.npy"  # MinHash signatures of a dedup run, for a later `--against`
DEDUP_INDEX = "dedup_index.parquet"
PLAN = "plan.json"  # mixture search (mixopt): the plan, its proxies' results and settings, the fit, the choice
MIXTURES = "mixtures.parquet"
RESULTS = "results.parquet"
SWEEP = "sweep.json"
FIT_CURVE = "fit_curve.json"  # a sweep's cross-validated rank correlation as its proxies finish
SWEEP_SHARDS = "shards"  # `wb mix run --shard i/n`: shards/<i>-of-<n>/results.parquet, joined by `wb mix merge`
FIT = "fit.json"
MIXTURE = "mixture.json"
PARETO = "pareto.parquet"
# What a launcher (the app's `app.jobs.launch`) writes before `wb` starts: its log, its record of the job
# (pid, argv, exit code) and the job's YAML config. They belong to the run, so a run neither refuses them
# as foreign nor moves them aside.
LOG = "wb.log"
JOB = ".wb-job.json"
JOB_CONFIG = "job-config.yaml"
LAUNCH_FILES = (LOG, JOB, JOB_CONFIG)

TEMP_MARK = ".tmp-"
STATES = ("running", "complete", "failed", "interrupted", "unreadable", "unknown")
FINISHED = ("complete", "failed", "interrupted", "unreadable")


def temp_path(path: Path) -> Path:
    """The hidden name `path` is written under before it is renamed into place: `.NAME.tmp-PID`, so a
    reused run directory can tell a dead writer's leftovers (`temp_owner`) from a live one's."""
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")


def temp_owner(name: str) -> int | None:
    """The pid writing the temporary file `name` (see `temp_path`); None for any other name."""
    if not name.startswith(".") or TEMP_MARK not in name:
        return None
    pid = name.rsplit(TEMP_MARK, 1)[1]
    return int(pid) if pid.isdigit() else None


def write_atomic(path: str | os.PathLike, content: bytes | str | dict | list, durable: bool = True) -> None:
    """Write `content` to `path` through `temp_path` and a rename, so no reader ever sees half a file: bytes
    as they are, text as UTF-8, a dict or list as indented JSON. `durable` syncs the data to disk before the
    rename (a progress file skips that: losing its latest version costs nothing)."""
    path = Path(path)
    if isinstance(content, bytes):
        data = content
    elif isinstance(content, str):
        data = content.encode()
    else:
        data = (json.dumps(content, indent=2, default=str) + "\n").encode()
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_json(path: str | os.PathLike) -> dict | None:
    """The JSON object in `path`, or None when there is no such file. Raise `InputError` (one line naming
    the file) when it cannot be read or is not a JSON object."""
    path = Path(path)
    try:
        value = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
    except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
        raise InputError(f"{path}: not valid JSON ({getattr(exc, 'msg', exc)})") from None
    if not isinstance(value, dict):
        raise InputError(f"{path}: expected a JSON object; found {type(value).__name__}")
    return value


def _read_quietly(path: Path) -> dict | None:
    """`read_json` for a file a watcher may find corrupt: then it is as good as missing."""
    try:
        return read_json(path)
    except InputError:
        return None


def pid_alive(pid: int | None, identity: dict | None = None) -> bool:
    """Whether process `pid` runs (a zombie, exited but not reaped, does not) and, when `identity` (what
    `process_identity` recorded at launch) is given, is still that process and not a later one that reuses
    the pid (after a reboot, or in a copied workspace)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    except (OverflowError, ValueError, TypeError):
        return False
    try:
        with open(f"/proc/{int(pid)}/stat") as f:
            if f.read().rsplit(")", 1)[-1].split()[0] == "Z":
                return False
    except OSError:
        pass
    if not isinstance(identity, dict):
        return True
    # The start time alone tells processes apart (a reused pid starts later). The command line is kept for
    # messages only: it changes at exec, so a launcher that records it right after fork sees its own.
    now = process_identity(int(pid))
    return now is not None and now["start"] == identity.get("start")


def process_identity(pid: int) -> dict | None:
    """What tells process `pid` from a later one with the same pid: its start time (clock ticks since boot,
    field 22 of /proc/PID/stat; psutil's create time where there is no /proc) and its command line. None
    when the process is gone or cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            start = "ticks:" + f.read().rsplit(")", 1)[-1].split()[19]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
        return {"start": start, "cmdline": cmdline}
    except (OSError, IndexError):
        pass
    try:
        import psutil

        proc = psutil.Process(pid)
        return {"start": f"created:{proc.create_time()}", "cmdline": proc.cmdline()}
    except Exception:  # psutil missing, the process gone or another user's
        return None


def read_progress(run_dir: str | os.PathLike) -> dict | None:
    """The run's `progress.json`, or None when it has none (or a corrupt one). A file that says running
    while its process is gone reads as interrupted (a SIGKILL leaves no chance to write anything)."""
    progress = _read_quietly(Path(run_dir) / PROGRESS)
    return None if progress is None else _unless_gone(progress)


def _unless_gone(progress: dict) -> dict:
    """`progress`, or a copy that says interrupted when it says running but its process is gone."""
    if progress.get("state") != "running" or pid_alive(progress.get("pid"), progress.get("process")):
        return progress
    return {**progress, "state": "interrupted", "error": progress.get("error") or
            f"process {progress.get('pid')} is gone"}


def last_log_line(run_dir: str | os.PathLike) -> str | None:
    """The last non-empty line of the launcher's `wb.log` (a failed job's one-line error)."""
    try:
        with open(Path(run_dir) / LOG, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return None
    return lines[-1] if lines else None


USAGE_KEYS = ("requests", "prefill_tokens", "sampled_tokens", "trained_tokens", "cost_usd")
_PROGRESS_KEYS = {"state", "stage", "phase", "pid", "started_at", "updated_at", "elapsed_seconds", "done", "total",
                  "unit", "rate", "eta_seconds", "usage", "error", "process"}


@dataclass
class RunState:
    """A run as its files describe it (see the module docstring for how `state` is decided)."""

    path: str
    stage: str | None = None
    state: str = "unknown"  # one of STATES
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
        """The state as one flat row: usage fields side by side, no `extra`."""
        row = asdict(self)
        usage = row.pop("usage")
        row.pop("extra")
        row.update({k: usage.get(k) for k in USAGE_KEYS})
        return row


def run_state(path: str | os.PathLike) -> RunState:
    """The state of the run in `path`, from its files alone; never raises (a corrupt run file is
    `unreadable`, with the one-line error naming it)."""
    path = Path(path)
    st = RunState(path=str(path))
    problems: list[str] = []
    unfinished = (path / INCOMPLETE).exists()
    marker = _checked(path / INCOMPLETE, problems) if unfinished else None
    progress = _checked(path / PROGRESS, problems)
    job = _checked(path / JOB, problems) or {}
    manifest = None if unfinished else _checked(path / MANIFEST, problems)
    if progress is not None and progress.get("state") not in _PROGRESS_STATES:
        problems.append(f"{path / PROGRESS}: expected `state` to be one of {', '.join(_PROGRESS_STATES)}; "
                        f"found {progress.get('state')!r}")
        progress = None
    progress = _unless_gone(progress) if progress else {}
    _fill(st, manifest or {}, progress, marker or {}, job)
    if problems:
        st.state, error = "unreadable", problems[0]
    else:
        st.state, error = _decide(path, manifest is not None, marker, progress, job, st)
    st.error = error if st.state in ("failed", "interrupted", "unreadable") else None
    return st


_PROGRESS_STATES = ("running", "complete", "failed", "interrupted")
# The type every field a reader uses must have; a file with another is unreadable (named with the field).
_NUMBER = (int, float)
_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "stage": str, "state": str, "phase": str, "pid": int, "done": int, "total": int, "unit": str, "rate": _NUMBER,
    "eta_seconds": _NUMBER, "elapsed_seconds": _NUMBER, "rows_in": int, "rows_out": int, "wall_seconds": _NUMBER,
    "started_at": str, "command": str, "error": str, "argv": list, "usage": dict, "returncode": int,
    "process": dict,
}


def _checked(path: Path, problems: list[str]) -> dict | None:
    """The JSON object in `path` (None if there is none) when every field has its type; else None, with the
    reason added to `problems`."""
    try:
        record = read_json(path)
    except InputError as exc:
        problems.append(str(exc))
        return None
    if record is None:
        return None
    for key, kind in _FIELD_TYPES.items():
        value = record.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            problems.append(f"{path}: field `{key}` is {type(value).__name__} {str(value)[:40]!r}; expected "
                            f"{'a number' if kind is _NUMBER else kind.__name__}")  # type: ignore[union-attr]
            return None
    usage = record.get("usage") or {}
    bad = [k for k in USAGE_KEYS if usage.get(k) is not None and (not isinstance(usage[k], _NUMBER)
                                                                   or isinstance(usage[k], bool))]
    if bad:
        problems.append(f"{path}: field `usage.{bad[0]}` is {type(usage[bad[0]]).__name__}; expected a number")
        return None
    return record


def _fill(st: RunState, manifest: dict, progress: dict, marker: dict, job: dict) -> None:
    """Everything but the state: the manifest's numbers over the live progress, the launcher's record last."""
    for key in ("phase", "done", "total", "unit", "rate", "eta_seconds"):
        setattr(st, key, progress.get(key))
    st.extra = {k: v for k, v in progress.items() if k not in _PROGRESS_KEYS}
    st.usage = {**(progress.get("usage") or {}), **(manifest.get("usage") or {})}
    st.stage = manifest.get("stage") or progress.get("stage") or marker.get("stage") or job.get("stage")
    st.rows_in, st.rows_out = manifest.get("rows_in"), manifest.get("rows_out")
    st.wall_seconds = manifest.get("wall_seconds", progress.get("elapsed_seconds"))
    st.started_at = manifest.get("started_at") or progress.get("started_at") or job.get("started_at")
    argv = marker.get("argv")
    st.command = manifest.get("command") or job.get("command") or (" ".join(["wb", *argv[1:]]) if argv else None)
    st.pid = progress.get("pid") or job.get("pid") or marker.get("pid")


def _decide(path: Path, finished: bool, marker: dict | None, progress: dict, job: dict,
            st: RunState) -> tuple[str, str | None]:
    """(state, error) by the rules of the module docstring; sets `st.pid` to the live process if any."""
    said = progress.get("state")
    marker = marker or {}
    candidates = ((progress.get("pid"), progress.get("process")) if said == "running" else (None, None),
                  (marker.get("pid"), marker.get("process")),
                  (job.get("pid"), job.get("process")) if job.get("returncode") is None else (None, None))
    live = [pid for pid, identity in candidates if pid_alive(pid, identity)]
    if live:
        st.pid = live[0]
    # the same command launched again (Resume, Retry): its process lives, but the files are still the last
    # run's until it writes its own
    rerun = job.get("returncode") is None and job.get("pid") != progress.get("pid") \
        and pid_alive(job.get("pid"), job.get("process"))
    if finished:
        return ("running", None) if said == "running" or rerun else ("complete", None)
    if said in ("failed", "interrupted") and not rerun:
        return said, progress.get("error")
    if live:
        return "running", None
    if job.get("returncode") not in (None, 0):
        return "failed", last_log_line(path) or f"exit code {job['returncode']}"
    if said == "complete":
        return "interrupted", f"{path / PROGRESS} says complete, but the run has no {MANIFEST}"
    if progress or (path / INCOMPLETE).exists() or job:
        gone = f"process {st.pid} is gone" if st.pid else None
        return "interrupted", progress.get("error") or (last_log_line(path) if job else None) or gone
    return "unknown", None
