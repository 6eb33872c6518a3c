"""Every run below a workspace, read from files only: `list_runs` for `wb runs`, the app and scripts.

A run directory is one that holds `manifest.json`, `.run-incomplete`, `progress.json` or a launcher's
record `.wb-job.json` (a job that failed before it wrote anything else); its state is
`workbench.runfiles.run_state` (the one reading of a run's files). Directories inside a run (checkpoints,
models) are not runs of their own.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from workbench.errors import InputError
from workbench.runfiles import INCOMPLETE, JOB, MANIFEST, PROGRESS, run_state

TOKEN_KINDS = ("requests", "prefill_tokens", "sampled_tokens", "trained_tokens")
# beside the paid totals (`workbench.rundir.Usage`): what the response cache answered (free) and the part of
# the totals sent through a batch API
BILLED_KINDS = ("cached_requests", "cached_prefill_tokens", "cached_sampled_tokens", "batch_requests",
                "batch_prefill_tokens", "batch_sampled_tokens")
MAX_DEPTH = 6  # workspaces nest runs a few levels deep (runs/demo/sft); checkpoints are never walked


def is_run_dir(path: Path) -> bool:
    return any((path / name).exists() for name in (MANIFEST, INCOMPLETE, PROGRESS, JOB))


def find_run_dirs(workspace: str | os.PathLike) -> list[Path]:
    """Run directories at or below `workspace`, sorted by path; raise `InputError` if it is missing."""
    root = Path(workspace)
    if not root.is_dir():
        raise InputError(f"{root}: no such directory (a workspace is a directory holding run directories)")
    found: list[Path] = []

    def walk(path: Path, depth: int) -> None:
        if is_run_dir(path):
            found.append(path)
            return
        if depth >= MAX_DEPTH:
            return
        try:
            children = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            return
        for child in children:
            walk(child, depth + 1)

    walk(root, 0)
    return found


def run_info(path: str | os.PathLike, workspace: str | os.PathLike | None = None) -> dict:
    """One run's row: name, path, stage, state, phase (while running), done/total, rows in/out, tokens, cost,
    wall seconds, start, error; the state is `workbench.runfiles.run_state`'s."""
    path = Path(path)
    st = run_state(path)
    name = str(path.relative_to(workspace)) if workspace is not None and path != Path(workspace) else path.name
    usage = {k: st.usage.get(k) for k in (*TOKEN_KINDS, *BILLED_KINDS, "cost_usd")}
    return {
        "name": name or ".", "path": str(path), "stage": st.stage, "state": st.state,
        "phase": st.phase if st.state == "running" else None, "done": st.done, "total": st.total,
        "rows_in": st.rows_in, "rows_out": st.rows_out,
        **{k: int(usage[k] or 0) for k in (*TOKEN_KINDS, *BILLED_KINDS)},
        "cost_usd": usage["cost_usd"], "wall_seconds": st.wall_seconds, "started_at": st.started_at,
        "error": st.error,
    }


def list_runs(workspace: str | os.PathLike) -> list[dict]:
    """`run_info` of every run at or below `workspace`, in path order."""
    return [run_info(p, workspace) for p in find_run_dirs(workspace)]


def usage_totals(runs: list[dict]) -> dict[str, dict]:
    """Token and cost totals per stage, and `"total"` over every run: one ledger across generation,
    judges, evaluation and training; cached and batch tokens apart (`BILLED_KINDS`)."""
    kinds = (*TOKEN_KINDS, *BILLED_KINDS)
    totals: dict[str, dict] = defaultdict(lambda: dict.fromkeys(("runs", *kinds), 0) | {"cost_usd": None})
    for run in runs:
        for key in (run["stage"] or "unknown", "total"):
            t = totals[key]
            t["runs"] += 1
            for k in kinds:
                t[k] += run.get(k) or 0
            if run["cost_usd"] is not None:
                t["cost_usd"] = (t["cost_usd"] or 0.0) + run["cost_usd"]
    ordered = {k: totals[k] for k in sorted(k for k in totals if k != "total")}
    if "total" in totals:
        ordered["total"] = totals["total"]
    return ordered
