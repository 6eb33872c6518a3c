"""The app's workspace: the one directory it lists runs under and serves files from.

`wb ui --workspace DIR` passes it in `$WB_UI_WORKSPACE`. Every path that comes from the browser (query
parameters, text inputs) goes through `safe_path`, so nothing outside the workspace is read or written.
A run is named by its path relative to the workspace (`demo/curated`); that name is the `run` query
parameter.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from workbench.errors import InputError

ENV = "WB_UI_WORKSPACE"
JOB = ".wb-job.json"  # written by app.jobs when the app launched the run
MAX_DEPTH = 4  # launch records are looked for this many levels below the workspace


def workspace_root() -> Path:
    """The workspace directory: `$WB_UI_WORKSPACE`, else `./runs`."""
    return Path(os.environ.get(ENV) or "runs").resolve()


def safe_path(root: Path, name: str | os.PathLike) -> Path:
    """`name` (relative to `root`, or absolute) resolved; raise `InputError` when it leaves the workspace."""
    root = Path(root).resolve()
    candidate = Path(name)
    path = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if path != root and not path.is_relative_to(root):
        raise InputError(f"{name}: outside the workspace {root}; the app only reads and writes under it")
    return path


def run_name(root: Path, path: Path) -> str:
    """The run's name in the app and in the URL: its path relative to the workspace."""
    return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()


def find_run_dirs(root: Path) -> list[Path]:
    """Run directories under `root` (`workbench.runs.find_run_dirs`) plus the directories of jobs the app
    launched that failed before they wrote anything else (their log says why)."""
    from workbench.runs import find_run_dirs as runs_below

    found = set(runs_below(root))
    for depth in range(1, MAX_DEPTH + 1):
        found.update(p.parent for p in Path(root).glob("/".join(["*"] * depth) + "/" + JOB))
    return sorted(found)


def read_json(path: Path) -> dict | None:
    """A JSON object from `path`, or None when it is missing, half-written or not an object."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
