"""Where the workbench keeps its own files (cached fixtures, app state): `$WB_HOME` or ~/.cache/workbench."""

from __future__ import annotations

import os
from pathlib import Path


def workspace_dir() -> Path:
    return Path(os.environ.get("WB_HOME") or Path.home() / ".cache" / "workbench")


def bundled_data_dir() -> Path:
    """`examples/data` of this checkout: GSM8K, MATH-500 and tinyshakespeare, with their licences."""
    return Path(__file__).resolve().parent.parent / "examples" / "data"
