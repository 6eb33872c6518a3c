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
from workbench.rundir import INCOMPLETE, MANIFEST

ENV = "WB_UI_WORKSPACE"
PROGRESS = "progress.json"
JOB = ".wb-job.json"  # written by app.jobs when the app launched the run
RUN_MARKERS = (MANIFEST, INCOMPLETE, PROGRESS, JOB)
MAX_DEPTH = 4  # run directories are looked for this many levels below the workspace


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


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and any((path / m).exists() for m in RUN_MARKERS)


def find_run_dirs(root: Path, max_depth: int = MAX_DEPTH) -> list[Path]:
    """Run directories under `root` (not below another run: a trainer's `model/` is no run), sorted by name."""
    root = Path(root)
    found: list[Path] = []
    if not root.is_dir():
        return found

    def walk(directory: Path, depth: int) -> None:
        try:
            children = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            return
        for child in children:
            if is_run_dir(child):
                found.append(child)
            elif depth < max_depth:
                walk(child, depth + 1)

    walk(root, 1)
    return found


def read_json(path: Path) -> dict | None:
    """A JSON object from `path`, or None when it is missing, half-written or not an object."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
