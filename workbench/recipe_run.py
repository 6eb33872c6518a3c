"""Running a recipe (`wb recipe run`) and reading where it stands (`wb recipe status`, the app's Recipe page).

Each step runs as its own `wb` subprocess into WORKSPACE/STEP-FINGERPRINT, with its log (`wb.log`) and launch
record (`.wb-job.json`) there as for a job the app starts, so `wb runs`, the app and `run_state` see it like
any run. A step whose directory holds a complete run is reused; an interrupted one is re-run with the same
command, which resumes it as that command does (a generation ledger, a training checkpoint). A step dies
with the runner (PR_SET_PDEATHSIG), so a SIGKILLed recipe leaves nothing running and re-running it resumes.
The last run's record, `WORKSPACE/recipe.json`, holds the runner's pid and each step's outcome and hashed
options, from which `status` says why a step will run again.

The cost cap: each step gets the least of its own `max_cost` and what the recipe's `max_cost` leaves after
the other steps' spending. A command with a `--max-cost` flag is given it and stops itself; for any other
the runner watches the step's `progress.json` and stops it (SIGTERM: it unwinds and stays resumable) once its
cost reaches the budget. Raising the cap and re-running continues the step.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from workbench.errors import CostCapReached, InputError, WorkbenchError
from workbench.launch import launch_wb, record_exit
from workbench.recipe import Recipe, Resolved, resolve, takes
from workbench.rundir import DirLock
from workbench.runfiles import (
    LOG,
    pid_alive,
    process_identity,
    read_json,
    run_state,
    write_atomic,
)

RECORD = "recipe.json"  # in the workspace: the last `wb recipe run`
RECIPE_LOG = "recipe.log"  # in the workspace: the output of a recipe started in the background (`start`)
STATES = ("reused", "to run", "running", "done", "failed")
POLL_SECONDS = 0.25
GRACE_SECONDS = 10.0


@dataclass
class StepStatus:
    """One step's line of `wb recipe status`."""

    name: str
    command: str
    state: str  # one of STATES
    why: str
    run_dir: str | None = None
    fingerprint: str | None = None
    cost_usd: float | None = None
    usage: dict | None = None
    after: list[str] | None = None
    rows_in: int | None = None
    rows_out: int | None = None
    dropped: dict | None = None  # rows dropped by reason, from a finished run's manifest


def read_record(workspace: Path) -> dict:
    """The workspace's `recipe.json` (an empty record when there is none or it is corrupt)."""
    try:
        return read_json(workspace / RECORD) or {}
    except InputError:
        return {}


def recipe_running(workspace: Path) -> int | None:
    """The pid of a live `wb recipe run` on this workspace, if any."""
    record = read_record(workspace)
    return record.get("pid") if record.get("state") == "running" and pid_alive(record.get("pid"),
                                                                              record.get("process")) else None


def status(recipe: Recipe) -> list[StepStatus]:
    """Every step's state from the files alone (nothing runs): its run directory by fingerprint, that run's
    state, and why a step will run (what changed since the last run, or which step it waits for)."""
    record = read_record(recipe.workspace).get("steps") or {}
    dirs: dict[str, Path | None] = {}
    out = []
    for step in recipe.steps.values():
        r = resolve(recipe, step, dirs)
        last = record.get(step.name) or {}
        dirs[step.name] = r.run_dir(recipe.workspace)
        if r.in_place is not None and not _ran_in_place(r, last):
            dirs[step.name] = None  # its dependants wait until it has worked in that directory
        out.append(_status_of(recipe, r, last))
    return out


def _ran_in_place(r: Resolved, last: dict) -> bool:
    """Whether an in-place step (no run directory of its own) finished with this fingerprint: only the
    recipe's record knows."""
    return last.get("fingerprint") == r.fingerprint and last.get("outcome") in ("done", "reused")


def _status_of(recipe: Recipe, r: Resolved, last: dict) -> StepStatus:
    name, command = r.step.name, "wb " + " ".join(r.step.command)
    if r.fingerprint is None:
        shown = ", ".join(r.waiting[:3]) + (f" and {len(r.waiting) - 3} more" if len(r.waiting) > 3 else "")
        return StepStatus(name, command, "to run", f"after {shown}", after=r.step.after)
    run = r.run_dir(recipe.workspace)
    st = run_state(run)  # type: ignore[arg-type]
    base = dict(run_dir=str(run), fingerprint=r.fingerprint, cost_usd=st.usage.get("cost_usd"), usage=st.usage,
                after=r.step.after, rows_in=st.rows_in, rows_out=st.rows_out, dropped=_dropped(run, st.state))
    ran_here = last.get("fingerprint") == r.fingerprint
    if r.in_place is not None and st.state != "running":
        if _ran_in_place(r, last):
            state = "done" if last.get("outcome") == "done" else "reused"
            return StepStatus(name, command, state, f"worked in {run} with the same fingerprint", **base)
        return StepStatus(name, command, "to run", f"works in {run}: " + _changes(last.get("hashed"), r.hashed),
                          **base)
    if st.state == "complete":
        if ran_here and last.get("outcome") == "done":
            return StepStatus(name, command, "done", f"ran in the last recipe run ({_wall(st.wall_seconds)})", **base)
        return StepStatus(name, command, "reused", "a complete run with the same fingerprint", **base)
    if st.state == "running":
        return StepStatus(name, command, "running", f"pid {st.pid}: {st.done or 0}/{st.total or '?'} {st.unit or ''}"
                          .rstrip(), **base)
    if ran_here and last.get("outcome") == "capped" and st.state in ("failed", "interrupted"):
        return StepStatus(name, command, "to run", f"stopped at its cost cap ({last.get('error')}); raise max_cost "
                                                   "and re-run to continue", **base)
    if st.state == "failed":
        return StepStatus(name, command, "failed", st.error or "failed", **base)
    if st.state in ("interrupted", "unreadable"):
        return StepStatus(name, command, "to run", f"resumes the {st.state} run ({st.error})", **base)
    return StepStatus(name, command, "to run", _changes(last.get("hashed"), r.hashed), **base)


def _dropped(run: Path | None, state: str) -> dict | None:
    """Rows a finished run dropped, by reason (its manifest's `dropped`)."""
    if run is None or state != "complete":
        return None
    try:
        return (read_json(run / "manifest.json") or {}).get("dropped") or None
    except InputError:
        return None


def _changes(before: dict | None, now: dict) -> str:
    """Why a step has no run with its fingerprint: the options and inputs that differ from its last run."""
    if not before:
        return "no run with this fingerprint yet"
    said = []
    for key in sorted(set(before.get("options", {})) | set(now["options"])):
        old, new = before.get("options", {}).get(key), now["options"].get(key)
        if old != new:
            said.append(f"option {key}: {old!r} -> {new!r}")
    said += [f"input {path} changed" for path, fp in now["inputs"].items()
             if path in before.get("inputs", {}) and before["inputs"][path] != fp]
    return "; ".join(said[:4]) or "its inputs changed"


def _wall(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


def run(recipe: Recipe, max_cost: float | None = None, out: TextIO | None = None, echo: bool = True,
        until: str | None = None) -> list[StepStatus]:
    """Run the recipe's steps in order, reusing complete runs, up to step `until` (default: all); return every
    step's status. `max_cost` overrides the recipe's. Raise `CostCapReached` when a cap stops a step,
    `WorkbenchError` when one fails."""
    cap = recipe.max_cost if max_cost is None else max_cost
    out = out or sys.stdout
    if until is not None and until not in recipe.steps:
        raise InputError(f"--until {until}: the recipe has no such step; it has {', '.join(recipe.steps)}")
    recipe.workspace.mkdir(parents=True, exist_ok=True)
    lock = DirLock(recipe.workspace, "recipe")  # a second `wb recipe run` here is refused, naming this pid
    previous = read_record(recipe.workspace).get("steps") or {}
    steps: dict[str, dict] = dict(previous)  # steps this run does not reach keep what the last one said
    record = {"recipe": str(recipe.path), "name": recipe.name, "pid": os.getpid(),
              "process": process_identity(os.getpid()), "state": "running", "started_at": _now(),
              "max_cost": cap, "steps": steps}
    dirs: dict[str, Path | None] = {}
    try:
        write_atomic(recipe.workspace / RECORD, record)
        for step in recipe.steps.values():
            r = resolve(recipe, step, dirs)
            if r.fingerprint is None:  # cannot happen in order unless an earlier step vanished meanwhile
                raise WorkbenchError(f"step {step.name!r}: waits for {', '.join(r.waiting)}, which has no run")
            run_dir = r.run_dir(recipe.workspace)
            dirs[step.name] = run_dir
            steps[step.name] = entry = {"fingerprint": r.fingerprint, "run_dir": str(run_dir), "hashed": r.hashed}
            state = run_state(run_dir)  # type: ignore[arg-type]
            reused = _reused(r, state.state, previous.get(step.name) or {})
            if reused:
                entry["outcome"] = "reused"
                print(f"[{step.name}] reused {run_dir} ({reused})", file=out)
                if step.name == until:
                    break
                continue
            if state.state == "running":
                raise WorkbenchError(f"step {step.name!r}: {run_dir} is being written by pid {state.pid}; wait for "
                                     "it to end or stop it, then re-run the recipe")
            budget = _budget(recipe, step.name, step.max_cost, cap, dirs)
            write_atomic(recipe.workspace / RECORD, record)  # this step started: its last outcome no longer holds
            log = recipe.workspace / f"{step.name}-{r.fingerprint}.log" if r.in_place else None
            entry.update(_run_step(r, run_dir, budget, out, echo, recipe.base, log))  # type: ignore[arg-type]
            write_atomic(recipe.workspace / RECORD, record)
            if entry["outcome"] == "capped":
                raise CostCapReached(f"step {step.name!r} stopped at its cost cap: {entry['error']}; raise "
                                    "--max-cost (or the step's max_cost) and re-run to continue")
            if entry["outcome"] != "done":
                raise WorkbenchError(f"step {step.name!r} failed: {entry['error']} (log: {run_dir}/{LOG})")
            if step.name == until:
                break
        record["state"] = "complete"
    except KeyboardInterrupt:
        record["state"] = "interrupted"
        raise
    except BaseException:
        record["state"] = "failed"
        raise
    finally:
        record["finished_at"] = _now()
        write_atomic(recipe.workspace / RECORD, record)
        lock.release()
    return status(recipe)


def _reused(r: Resolved, state: str, last: dict) -> str | None:
    """Why step `r` needs no run (None: it does): a complete run of its fingerprint, or for an in-place step,
    the record of having worked in that directory with it."""
    if r.in_place is not None:
        return "it worked there with the same fingerprint" if state != "running" and _ran_in_place(r, last) else None
    return "a complete run with the same fingerprint" if state == "complete" else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def spent(run_dir: Path | None) -> float:
    """USD a step's run has spent so far (its manifest, or its live progress); 0 when it reports no cost."""
    if run_dir is None:
        return 0.0
    return float(run_state(run_dir).usage.get("cost_usd") or 0.0)


def _budget(recipe: Recipe, name: str, step_cap: float | None, cap: float | None,
            dirs: dict[str, Path | None]) -> float | None:
    """What step `name` may spend in all (its own spending so far included): the least of its cap and what
    the recipe's cap leaves after every other step's spending."""
    left = None if cap is None else cap - sum(spent(d) for n, d in dirs.items() if n != name)
    caps = [c for c in (step_cap, left) if c is not None]
    return min(caps) if caps else None


def _run_step(r: Resolved, run_dir: Path, budget: float | None, out: TextIO, echo: bool, cwd: Path,
              log: Path | None = None) -> dict:
    """Run one step to its end; return its outcome (`done`, `failed`, `capped`) with the error if any."""
    name = r.step.name
    if budget is not None and spent(run_dir) >= budget:
        return {"outcome": "capped", "error": f"spent ${spent(run_dir):.4f} of a ${budget:.4f} budget"}
    argv = [*r.step.command, *r.argv, *([] if r.in_place else ["--output", str(run_dir)])]
    # a command with its own --max-cost stops itself (it needs prices to know what it spends)
    priced = any(r.options.get(k) is not None for k in ("price_in", "price_out", "price_trained", "price_sampled"))
    self_capped = budget is not None and priced and takes(r.step.command, "max_cost")
    if self_capped:
        argv += ["--max-cost", f"{budget:.6f}"]
    print(f"[{name}] $ wb {shlex.join(argv)}", file=out, flush=True)
    started = time.monotonic()
    proc = launch(argv, run_dir, cwd, log)
    capped = _watch(proc, run_dir, None if self_capped else budget, out if echo else None, log or run_dir / LOG)
    code = proc.returncode
    if log is None:
        record_exit(run_dir, code)
    st = run_state(run_dir)
    cost = st.usage.get("cost_usd")
    shown = f", ${cost:.4f}" if cost is not None else ""
    if st.state == "complete" and code == 0:
        print(f"[{name}] done in {time.monotonic() - started:.1f} s{shown}: {run_dir}", file=out, flush=True)
        return {"outcome": "done"}
    if capped or (budget is not None and ((cost or 0.0) >= budget or "cost cap" in (st.error or ""))):
        return {"outcome": "capped", "error": f"spent ${cost or 0:.4f} of a ${budget:.4f} budget"}
    return {"outcome": "failed", "error": st.error or f"exit code {code}"}


def _die_with_parent() -> None:  # pragma: no cover (runs in the child between fork and exec)
    """Ask Linux to SIGKILL this child when the runner dies, however it dies (SIGKILL included)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: a killed runner leaves its step running; re-running the recipe then says so


def launch(argv: list[str], run_dir: Path, cwd: Path | None = None, log_path: Path | None = None) -> subprocess.Popen:
    """Start `wb ARGV` in `cwd` writing into `run_dir`, its output in `wb.log` and a launch record beside it;
    with `log_path`, its output goes there and no launch record is written (the step works in another
    run's directory, whose own record must stay)."""
    return launch_wb(argv, run_dir, cwd, log_path, preexec_fn=_die_with_parent)[0]


def _watch(proc: subprocess.Popen, run_dir: Path, budget: float | None, echo: TextIO | None, log: Path) -> bool:
    """Wait for the step's process, echoing its log; stop it when its cost reaches `budget` (then return
    True). Ctrl-C or SIGTERM of the runner stops the step too, then goes on up."""
    capped = False
    offset = log.stat().st_size
    try:
        while proc.poll() is None:
            time.sleep(POLL_SECONDS)
            offset = _echo(log, offset, echo)
            if budget is not None and not capped and spent(run_dir) >= budget:
                capped = True
                proc.send_signal(signal.SIGTERM)  # the CLI unwinds: progress says interrupted, work is kept
    except KeyboardInterrupt:
        stop_process(proc)
        raise
    _echo(log, offset, echo)
    return capped


def _echo(log: Path, offset: int, out: TextIO | None) -> int:
    """Print what the log gained since `offset`; return the new offset."""
    if out is None:
        return offset
    with open(log, "rb") as f:
        f.seek(offset)
        data = f.read()
    if data:
        out.write(data.decode("utf-8", "replace"))
        out.flush()
    return offset + len(data)


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM the step we started, SIGKILL it after a grace period."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start(recipe: Recipe) -> int:
    """Start `wb recipe run` on `recipe` in the background (its own session, so it outlives the caller, e.g.
    the app), its output in WORKSPACE/recipe.log; return its pid. Refuses while one runs there."""
    pid = recipe_running(recipe.workspace)
    if pid is not None:
        raise InputError(f"{recipe.workspace}: recipe {recipe.name} is already running (pid {pid}); stop it first")
    recipe.workspace.mkdir(parents=True, exist_ok=True)
    argv = ["recipe", "run", str(recipe.path), "--workspace", str(recipe.workspace), "--quiet"]
    with open(recipe.workspace / RECIPE_LOG, "ab") as log:
        log.write(f"$ wb {shlex.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", *argv], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=recipe.base, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    threading.Thread(target=proc.wait, daemon=True).start()  # reap it, so it never lingers as a zombie
    # say it runs at once (the runner rewrites this record when it starts), so a watcher refreshes from now on
    write_atomic(recipe.workspace / RECORD, {**read_record(recipe.workspace), "state": "running", "pid": proc.pid,
                                             "process": process_identity(proc.pid), "started_at": _now()})
    return proc.pid


def stop(workspace: Path, grace_seconds: float = GRACE_SECONDS) -> str:
    """Stop the `wb recipe run` working on `workspace` (SIGTERM: it stops its step and records interrupted);
    return what was done. Only a pid whose start time matches the record is signalled."""
    record = read_record(workspace)
    pid = recipe_running(workspace)
    if pid is None:
        return "no recipe is running there"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and pid_alive(pid, record.get("process")):
        time.sleep(0.1)
    return f"stopped recipe pid {pid}"


def as_rows(statuses: list[StepStatus]) -> list[dict]:
    """The statuses as plain dicts (for --json and the app)."""
    return [asdict(s) for s in statuses]
