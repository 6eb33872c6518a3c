"""Files for the app's path fields: the workspace's data files, runs and model directories to pick from, and
uploads saved into the workspace (atomically, under `uploads/`) and checked as `wb validate` checks a file,
so a bad JSONL line is named before any job reads it.

`pick_path(label, key, kinds, target)` is the one widget every page uses where a path is typed: a list of the
workspace's paths and an upload box; the choice fills the text input whose key is `target` (appended for
space-separated lists). It returns the chosen path, relative to the workspace.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

from app.workspace import safe_path, workspace_root
from workbench.errors import InputError
from workbench.io import SUFFIX_FORMATS
from workbench.runfiles import write_atomic

UPLOADS = "uploads"
KINDS = ("file", "run", "model")
MAX_LISTED = 2000  # paths offered in one list; a larger workspace is searched by typing
MAX_DEPTH = 5
MAX_UPLOAD_MB = 200  # Streamlit's own upload limit (server.maxUploadSize); larger files are copied in
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def workspace_paths(root: Path, kinds: tuple[str, ...] = ("file", "run")) -> list[str]:
    """Paths under the workspace, relative to it, sorted: data files (`file`: jsonl, json, parquet, csv, ...
    outside run directories), run directories (`run`) and model directories (`model`: a `config.json`
    beside weights). Hidden folders are skipped; at most `MAX_LISTED`, at most `MAX_DEPTH` folders deep."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise InputError(f"pick_path: unknown kind {sorted(unknown)[0]!r}; expected some of {', '.join(KINDS)}")
    from workbench.runs import is_run_dir

    root = Path(root)
    found: list[str] = []

    def walk(folder: Path, depth: int) -> None:
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            return
        for path in entries:
            if len(found) >= MAX_LISTED or path.name.startswith("."):
                continue
            name = path.relative_to(root).as_posix()
            if path.is_file():
                if "file" in kinds and path.suffix.lower() in SUFFIX_FORMATS:
                    found.append(name)
                continue
            if not path.is_dir():
                continue
            run = is_run_dir(path)
            if run and "run" in kinds:
                found.append(name)
            if "model" in kinds and (path / "config.json").is_file():
                found.append(name)
            if depth < MAX_DEPTH and (not run or "model" in kinds):  # a run's own files are not inputs
                walk(path, depth + 1)

    walk(root, 0)
    return sorted(found)


def save_upload(root: Path, filename: str, data: bytes) -> Path:
    """Write uploaded bytes to `uploads/NAME` in the workspace (atomically) and return the path. The same
    bytes under the same name reuse that file; other bytes under a taken name get `NAME-2`, `NAME-3`, ..."""
    stem, suffix = Path(filename).stem, Path(filename).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise InputError(f"{filename}: unknown format {suffix or '(no suffix)'!r}; upload one of "
                         f"{', '.join(sorted(SUFFIX_FORMATS))}")
    if len(data) > MAX_UPLOAD_MB * 2**20:
        raise InputError(f"{filename}: larger than {MAX_UPLOAD_MB} MB; copy it into the workspace folder instead")
    stem = _SAFE_NAME.sub("_", stem).strip("._") or "upload"
    folder = safe_path(root, UPLOADS)
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.blake2b(data, digest_size=16).digest()
    for n in range(1, 1000):
        path = folder / (f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}")
        if not path.exists():
            write_atomic(path, data)
            return path
        if hashlib.blake2b(path.read_bytes(), digest_size=16).digest() == digest:
            return path
    raise InputError(f"{folder}: 999 uploads named {stem}{suffix}; remove some")


def check_source(path: Path) -> str:
    """Read every row of a data file or run as `wb validate` does and return one line of what it holds
    ("12 rows, all valid SFT messages"); `InputError` names the file, line or row and field of the first
    problem."""
    import pyarrow as pa

    from workbench.io import open_source
    from workbench.schemas import KIND_LABELS, detect_kind, validate_tables

    source = open_source(path)
    kind = detect_kind(pa.schema([(n, pa.null()) for n in source.schema().names]))
    if kind == "unknown":  # no record kind to check the fields against: every line is still parsed
        rows = sum(t.num_rows for t in source.iter_tables())
        return f"{rows:,} rows; columns {source.schema().names} match no record kind (a job may name its fields)"
    rows = validate_tables(source.iter_rows_with_file(), kind)
    return f"{rows:,} rows, all valid {KIND_LABELS[kind]}"


def pick_path(label: str, key: str, kinds: tuple[str, ...] = ("file", "run"), target: str | None = None,
              append: bool = False, on_pick: Callable[[str], None] | None = None) -> str | None:
    """A picker over the workspace's paths plus an upload box, in a popover labelled `label`. The choice (an
    upload once it is saved and checked) fills `st.session_state[target]` when given (added to what is there
    with `append`, for space-separated lists), then calls `on_pick(target)` (a form that keeps its values
    elsewhere records it there), and is returned, relative to the workspace; None until then."""
    import streamlit as st

    root = workspace_root()
    chosen_key = f"{key}_chosen"

    def use(path: str) -> None:
        st.session_state[chosen_key] = path
        if target is not None:
            current = str(st.session_state.get(target) or "").split() if append else []
            st.session_state[target] = " ".join([*(p for p in current if p != path), path])
            if on_pick is not None:
                on_pick(target)

    def picked() -> None:
        if st.session_state.get(f"{key}_list"):
            use(st.session_state[f"{key}_list"])

    def uploaded() -> None:
        upload = st.session_state.get(f"{key}_upload")
        if upload is None:
            return
        try:
            path = save_upload(root, upload.name, upload.getvalue())
            name = path.relative_to(root).as_posix()
            try:
                summary = check_source(path)
            except InputError:
                path.unlink(missing_ok=True)  # only checked files stay in the workspace
                raise
            st.session_state[f"{key}_checked"] = ("ok", f"{name}: {summary}")
            use(name)
        except InputError as exc:
            st.session_state[f"{key}_checked"] = ("error", str(exc))

    with st.popover(label, icon=":material/folder_open:"):
        options = workspace_paths(root, kinds)
        st.selectbox(f"In the workspace ({len(options):,}{'+' if len(options) >= MAX_LISTED else ''})", options,
                     index=None, placeholder="choose a file or run", key=f"{key}_list", on_change=picked)
        if "file" in kinds:
            st.file_uploader(f"Or upload into {UPLOADS}/", type=[s.lstrip(".") for s in SUFFIX_FORMATS],
                             key=f"{key}_upload", on_change=uploaded,
                             help="saved in the workspace and checked row by row, as `wb validate` does")
        status = st.session_state.get(f"{key}_checked")
        if status:
            (st.success if status[0] == "ok" else st.error)(status[1])
    return st.session_state.get(chosen_key)
