"""The app's workspace: the one directory it lists runs under and serves files from.

`wb ui --workspace DIR` passes it in `$WB_UI_WORKSPACE`. Every path that comes from the browser (query
parameters, text inputs) goes through `safe_path`, so nothing outside the workspace is read or written.
A run is named by its path relative to the workspace (`demo/curated`); that name is the `run` query
parameter.
"""

from __future__ import annotations

import os
from pathlib import Path

from workbench.errors import InputError

ENV = "WB_UI_WORKSPACE"


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

