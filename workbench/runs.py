"""Every run below a workspace, read from files only: `list_runs` for `wb runs`, the app and scripts.

A run directory is one that holds `manifest.json`, `.run-incomplete` or `progress.json`. Its state comes
from `progress.json` when there is one (a dead pid reads as interrupted), else from the manifest
(complete) or the unfinished marker (running while its pid lives, interrupted after). Directories inside
a run (checkpoints, models) are not runs of their own.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

from workbench.errors import InputError
from workbench.progress import PROGRESS, pid_alive, read_progress
from workbench.rundir import INCOMPLETE, MANIFEST

TOKEN_KINDS = ("requests", "prefill_tokens", "sampled_tokens", "trained_tokens")
MAX_DEPTH = 6  # workspaces nest runs a few levels deep (runs/demo/sft); checkpoints are never walked


def is_run_dir(path: Path) -> bool:
    return any((path / name).exists() for name in (MANIFEST, INCOMPLETE, PROGRESS))


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


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def run_info(path: str | os.PathLike, workspace: str | os.PathLike | None = None) -> dict:
    """One run's row: name, path, stage, state, rows in/out, tokens, cost, wall seconds, start, error."""
    path = Path(path)
    manifest = _read_json(path / MANIFEST) if not (path / INCOMPLETE).exists() else None
    marker = _read_json(path / INCOMPLETE)
    progress = read_progress(path)
    usage = dict.fromkeys(TOKEN_KINDS, 0) | {"cost_usd": None}
    source = (manifest or {}).get("usage") or (progress or {}).get("usage") or {}
    usage.update({k: v for k, v in source.items() if k in usage and v is not None})
    if progress is not None:
        state = progress["state"]
    elif manifest is not None:
        state = "complete"
    elif marker is not None:
        state = "running" if pid_alive(marker.get("pid")) else "interrupted"
    elif (path / MANIFEST).exists():
        state = "unreadable"
    else:
        state = "unknown"
    stage = (manifest or progress or marker or {}).get("stage")
    name = str(path.relative_to(workspace)) if workspace is not None and path != Path(workspace) else path.name
    return {
        "name": name or ".", "path": str(path), "stage": stage, "state": state,
        "phase": (progress or {}).get("phase") if state == "running" else None,
        "done": (progress or {}).get("done"), "total": (progress or {}).get("total"),
        "rows_in": (manifest or {}).get("rows_in"), "rows_out": (manifest or {}).get("rows_out"),
        **{k: int(usage[k] or 0) for k in TOKEN_KINDS}, "cost_usd": usage["cost_usd"],
        "wall_seconds": (manifest or {}).get("wall_seconds", (progress or {}).get("elapsed_seconds")),
        "started_at": (manifest or progress or {}).get("started_at"),
        "error": (progress or {}).get("error") if state in ("failed", "interrupted") else None,
    }


def list_runs(workspace: str | os.PathLike) -> list[dict]:
    """`run_info` of every run at or below `workspace`, in path order."""
    return [run_info(p, workspace) for p in find_run_dirs(workspace)]


def usage_totals(runs: list[dict]) -> dict[str, dict]:
    """Token and cost totals per stage, and `"total"` over every run: one ledger across generation,
    judges, evaluation and training."""
    totals: dict[str, dict] = defaultdict(lambda: dict.fromkeys(("runs", *TOKEN_KINDS), 0) | {"cost_usd": None})
    for run in runs:
        for key in (run["stage"] or "unknown", "total"):
            t = totals[key]
            t["runs"] += 1
            for k in TOKEN_KINDS:
                t[k] += run[k]
            if run["cost_usd"] is not None:
                t["cost_usd"] = (t["cost_usd"] or 0.0) + run["cost_usd"]
    ordered = {k: totals[k] for k in sorted(k for k in totals if k != "total")}
    if "total" in totals:
        ordered["total"] = totals["total"]
    return ordered
