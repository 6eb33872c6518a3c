"""Run directories: every `wb` command writes its product into one, with a `manifest.json`.

A run is unfinished while the marker file `.run-incomplete` exists; `manifest.json` is written (atomically)
only when the product is complete, and the marker is removed after it. `finish` returns a `RunResult`:
the manifest (a dict) with the run's path and products attached, which every Python entry point returns. So a crash at any moment leaves
a directory that readers refuse as unfinished, never one that looks complete. Long jobs pass
`resumable=True`, keep their checkpoints inside the directory and finish it by being run again; other
runs that fail in a directory they created remove it, so bad input leaves nothing behind.

A directory holding anything that is not a `wb` run is refused unless the run's config says `overwrite`
(`--overwrite`; `workbench.config.RunOptions` also carries the command line the manifest records). When a
finished run is redone, its product is moved aside into `.previous/` first (so a reader never finds an
old `data.parquet` beside `.run-incomplete`), deleted when the new run finishes, and put back if the new
run fails. Temporary files a killed run left behind are removed when the directory is reused. The names
of a run's files, and how they are read and written, are `workbench.runfiles`'.

One run at a time: a run holds an OS lock (`flock`) on `.run-lock` from before it touches anything until it
ends, so a second run on the same directory fails at once with the holder's pid instead of deleting the first
one's files; the kernel drops the lock with the process, so even a SIGKILL leaves no stale lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from workbench.config import RunOptions, as_plain
from workbench.errors import InputError
from workbench.progress import ProgressFile
from workbench.runfiles import (
    INCOMPLETE,
    LAUNCH_FILES,
    LOCK,
    MANIFEST,
    PREVIOUS,
    PRODUCT,
    PRODUCT_JSONL,
    PROGRESS,
    REMOVED,
    SFT,
    SHARDS,
    pid_alive,
    process_identity,
    read_json,
    read_progress,
    temp_owner,
    write_atomic,
)

# What a resumable run rebuilds when it finishes; the rest of its directory (ledger, checkpoints,
# caches) is state that the re-run continues from, so only these are moved aside.
REBUILT_PRODUCTS = (PRODUCT, SHARDS, SFT, REMOVED)
# What belongs to the directory rather than to a run: never foreign, never moved aside or swept.
KEPT = (INCOMPLETE, LOCK, *LAUNCH_FILES)
KEY_LIBRARIES = ("pyarrow", "polars", "duckdb", "datasets", "datasketch", "openai", "lightgbm", "torch",
                 "transformers", "tokenizers", "streamlit", "vllm")


@dataclass
class Usage:
    """Tokens a run consumed, in the spirit of pay-per-token services; cost only when prices are given.

    `requests`, `prefill_tokens` and `sampled_tokens` are what was sent and paid for; `batch_*` is the part
    of them sent through a provider's batch API. `cached_*` were answered by the response cache
    (`llm/cache.py`): counted apart, never in the totals or the cost."""

    requests: int = 0
    prefill_tokens: int = 0
    sampled_tokens: int = 0
    trained_tokens: int = 0
    cost_usd: float | None = None
    cached_requests: int = 0
    cached_prefill_tokens: int = 0
    cached_sampled_tokens: int = 0
    batch_requests: int = 0
    batch_prefill_tokens: int = 0
    batch_sampled_tokens: int = 0

    def add(self, other: Usage) -> None:
        for f in fields(self):
            if f.name != "cost_usd":
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        if other.cost_usd is not None:
            self.cost_usd = (self.cost_usd or 0.0) + other.cost_usd


def library_versions() -> dict[str, str | None]:
    """Installed versions of the key libraries, read from package metadata (nothing is imported)."""
    versions: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in ("post-training-workbench", *KEY_LIBRARIES):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


class RunResult(dict):
    """What every Python entry point returns: the finished run's manifest (this dict: `result["rows_out"]`,
    `result["dropped"]`) with `path`, `products`, `data` and `read` attached, so a notebook goes straight
    from a call to the data:

    ```
    from curate import DedupConfig, deduplicate
    result = deduplicate(DedupConfig(threshold=0.7), ["corpus.jsonl"], "runs/dd")
    result["dropped"], result.data, result.read().num_rows, result.products["removed.parquet"]
    ```
    """

    def __init__(self, path: str | os.PathLike, manifest: dict):
        super().__init__(manifest)
        self.path = Path(path)

    @classmethod
    def of(cls, path: str | os.PathLike, manifest: dict | None = None) -> RunResult:
        """The result of the finished run at `path` (its manifest is read when not given)."""
        return cls(path, manifest if manifest is not None else read_manifest(path))

    @property
    def manifest(self) -> dict:
        return dict(self)

    @property
    def stage(self) -> str:
        return str(self.get("stage"))

    @property
    def products(self) -> dict[str, Path]:
        """Every file the run wrote, by name (`data.parquet`, `removed.parquet`, `sft.parquet`, ...)."""
        return {n: self.path / n for n in self.get("outputs") or [] if (self.path / n).exists()}

    @property
    def data(self) -> Path | None:
        """The main product, `data.parquet`, when the run has one."""
        return self.path / PRODUCT if (self.path / PRODUCT).exists() else None

    def read(self, name: str = PRODUCT):
        """A product as an Arrow table."""
        import pyarrow.parquet as pq

        return pq.read_table(self.path / name)

    def __repr__(self) -> str:
        return f"RunResult({str(self.path)!r}, stage={self.stage!r}, rows_out={self.get('rows_out')!r})"


class RunDir:
    """A run directory being written. Use as a context manager, or call `start` and `finish`.

    ```
    with RunDir(output, "convert", config, inputs=[source]) as run:
        rows = write_tables(source.iter_tables(), run.product)
        run.finish(rows_in=rows, rows_out=rows)
    ```
    """

    def __init__(self, path: str | os.PathLike, stage: str, config: object = None, inputs: list | None = None,
                 argv: list[str] | None = None, resumable: bool = False,
                 resume_guard: tuple[str, ...] | None = None, overwrite: bool | None = None,
                 own: tuple[str, ...] = ()):
        """`overwrite` and `argv` default to the config's own (a `RunOptions`), else to False and sys.argv."""
        self.path = Path(path)
        self.stage = stage
        self.config = config
        self.inputs = inputs or []
        options = config if isinstance(config, RunOptions) else RunOptions()
        self.overwrite = options.overwrite if overwrite is None else overwrite
        self.argv = list(next(a for a in (argv, options.argv, sys.argv) if a is not None))
        self.started = time.time()
        self.created = False
        self.finished = False
        self.resumable = resumable  # keep partial work on failure so a re-run can continue it
        # with resume_guard, an unfinished run resumes only under the same config, but for the fields named
        self.resume_guard = resume_guard
        self.progress: ProgressFile | NullProgress = NullProgress()
        self.own = own  # files the command writes here before the run starts (e.g. a cache): not foreign
        self._lock: DirLock | None = None

    @property
    def product(self) -> Path:
        return self.path / PRODUCT

    def start(self) -> RunDir:
        check_output_path(self.path)
        self.created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{self.path}: cannot create the output directory ({exc.strerror})") from None
        # the lock comes before anything is read or removed: a second run must not touch the first one's files
        self._lock = DirLock(self.path, self.stage)
        try:
            self._begin()
        except BaseException:
            self._release()
            if self.created:
                shutil.rmtree(self.path, ignore_errors=True)
            raise
        return self

    def _begin(self) -> None:
        self._check_same_stage()
        foreign = self._foreign_entries()
        if foreign and not self.overwrite:
            names = ", ".join(sorted(p.name for p in foreign)[:3]) + (", ..." if len(foreign) > 3 else "")
            raise InputError(f"{self.path}: holds files that are not a wb run ({names}); choose another output "
                             "directory, or pass --overwrite to replace them")
        if self.resumable and self.resume_guard:
            self._check_resumable_config()
        self._remove_stale_temporaries()
        # A finished run being redone is unfinished again until this run completes; its product goes aside.
        self._move_aside(foreign or self._old_products())
        write_atomic(self.path / INCOMPLETE, {"stage": self.stage, "argv": self.argv, "pid": os.getpid(),
                                              "process": process_identity(os.getpid()),
                                              "config": as_plain(self.config)})
        self.progress = ProgressFile(self.path, self.stage).start()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _foreign_entries(self) -> list[Path]:
        """The entries of an existing directory that holds no run (neither marker nor manifest)."""
        if self.created or (self.path / INCOMPLETE).exists() or (self.path / MANIFEST).exists():
            return []
        return [p for p in self.path.iterdir() if p.name not in (*self.own, *KEPT)]

    def _old_products(self) -> list[Path]:
        """What a redone run replaces: everything a finished non-resumable run wrote, or the rebuilt
        products of a resumable one (its state stays, to be continued)."""
        if self.created or not (self.path / MANIFEST).exists():
            return []
        if self.resumable:
            return [self.path / n for n in (MANIFEST, *REBUILT_PRODUCTS) if (self.path / n).exists()]
        return [p for p in self.path.iterdir() if p.name not in (PREVIOUS, *KEPT)]

    def _move_aside(self, entries: list[Path]) -> None:
        aside = self.path / PREVIOUS
        if not entries:
            return
        shutil.rmtree(aside, ignore_errors=True)
        aside.mkdir()
        for entry in entries:
            os.replace(entry, aside / entry.name)

    def _remove_stale_temporaries(self) -> None:
        """Temporary files of a killed run (`.NAME.tmp-PID` of a dead pid, and for a run that does not
        resume, every hidden file it staged), and an old run that was moved aside and never restored."""
        if self.created:
            return
        for entry in self.path.iterdir():
            name = entry.name
            if not name.startswith(".") or name in KEPT:
                continue
            pid = temp_owner(name)
            stale = (pid is not None and not pid_alive(pid)) \
                or (not self.resumable and name != PREVIOUS) \
                or (name == PREVIOUS and (self.path / INCOMPLETE).exists())
            if stale:
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()

    def _restore_previous(self) -> None:
        """Put a redone run's old product back after the new run failed (so bad input changes nothing)."""
        aside = self.path / PREVIOUS
        if not aside.is_dir():
            return
        for entry in self.path.iterdir():
            if entry.name not in (PREVIOUS, *KEPT):
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        for entry in aside.iterdir():
            os.replace(entry, self.path / entry.name)
        aside.rmdir()
        (self.path / INCOMPLETE).unlink(missing_ok=True)  # what was aside was a finished run or foreign files

    def _check_same_stage(self) -> None:
        """Refuse to write over (or resume) a run of another command: its product would be mixed up."""
        for name in (INCOMPLETE, MANIFEST):
            try:
                recorded = (read_json(self.path / name) or {}).get("stage")
            except InputError:
                continue  # a corrupt record says nothing about the stage; the run replaces it
            if recorded and recorded != self.stage:
                state = "an unfinished" if name == INCOMPLETE else "a finished"
                raise InputError(f"{self.path}: holds {state} `{recorded}` run; this is `{self.stage}`, "
                                 "so choose another output directory (or delete that one)")

    def _check_resumable_config(self) -> None:
        try:
            recorded = (read_json(self.path / INCOMPLETE) or {}).get("config")
        except InputError:
            return
        current = as_plain(self.config)
        if not isinstance(recorded, dict) or not isinstance(current, dict):
            return
        changed = sorted(k for k in current if k not in self.resume_guard and k in recorded
                         and json.dumps(recorded[k], default=str) != json.dumps(current[k], default=str))
        if changed:
            k = changed[0]
            raise InputError(f"{self.path}: an unfinished run with {k}={recorded[k]!r} is here; resuming it with "
                             f"{k}={current[k]!r} would mix two runs: re-run with the same options, or choose "
                             "another output directory")

    def finish(self, rows_in: int | None = None, rows_out: int | None = None, dropped: dict[str, int] | None = None,
               usage: Usage | None = None, **extra: object) -> RunResult:
        """Write the manifest and mark the run complete; return it as a `RunResult`."""
        finished = time.time()
        manifest = {
            "stage": self.stage,
            "status": "complete",
            "command": " ".join(["wb", *self.argv[1:]]) if self.argv else None,
            "argv": self.argv,
            "overwrite": self.overwrite,
            "config": as_plain(self.config),
            "inputs": [as_plain(i.describe() if hasattr(i, "describe") else i) for i in self.inputs],
            "rows_in": rows_in,
            "rows_out": rows_out,
            "dropped": dict(sorted((dropped or {}).items(), key=lambda kv: -kv[1])),
            "usage": asdict(usage or Usage()),
            "outputs": sorted(p.name for p in self.path.iterdir() if not p.name.startswith(".") and p.name != PROGRESS),
            "versions": library_versions(),
            "started_at": _iso(self.started),
            "finished_at": _iso(finished),
            "wall_seconds": round(finished - self.started, 3),
            **{k: as_plain(v) for k, v in extra.items()},
        }
        shutil.rmtree(self.path / PREVIOUS, ignore_errors=True)
        write_atomic(self.path / MANIFEST, manifest)
        (self.path / INCOMPLETE).unlink(missing_ok=True)
        self.progress.update(usage=manifest["usage"])
        self.progress.finish("complete")
        self.finished = True
        self._release()
        return RunResult(self.path, manifest)

    def __enter__(self) -> RunDir:
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._end(exc_type, exc)
        finally:
            self._release()

    def _end(self, exc_type, exc) -> None:
        if exc_type is None or self.finished:
            return
        from workbench.errors import WorkbenchError, is_interrupt

        if is_interrupt(exc):  # Ctrl-C or SIGTERM (the CLI turns it into KeyboardInterrupt)
            self.progress.finish("interrupted", "interrupted by a signal")
        else:
            message = str(exc) if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"
            self.progress.finish("failed", message[:2000])
        leftovers = [p for p in self.path.iterdir()
                     if p.name not in (INCOMPLETE, PROGRESS) and not p.name.startswith(".")]
        if self.created and not (self.resumable and leftovers):
            shutil.rmtree(self.path, ignore_errors=True)  # nothing worth keeping for a resume
            return
        if not self.resumable:
            self._restore_previous()


class DirLock:
    """An exclusive `flock` on DIR/.run-lock, held until `release` (which removes the file) or the process
    ends; the file records the holder's pid for the error a second run gets. Raise `InputError` naming that
    pid when another process holds it."""

    def __init__(self, path: Path, stage: str):
        self.path = path / LOCK
        for _ in range(10):  # a holder that releases removes the file: lock the one that is there now
            file = self._open()
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                file.seek(0)
                holder = file.read().split()
                file.close()
                raise InputError(f"{path}: another run is writing this directory (pid "
                                 f"{holder[0] if holder else 'unknown'}); wait for it to end, stop it, or choose "
                                 "another output directory") from None
            try:
                if os.stat(self.path).st_ino == os.fstat(file.fileno()).st_ino:
                    break
            except FileNotFoundError:
                pass
            file.close()
        else:
            raise InputError(f"{self.path}: the run lock keeps being replaced; is another run starting here?")
        self._file = file
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()} {stage}\n")
        file.flush()

    def _open(self):
        try:
            return open(self.path, "a+")  # never truncated before locking: it names the holder
        except OSError as exc:
            raise InputError(f"{self.path}: cannot open the run lock ({exc.strerror})") from None

    def release(self) -> None:
        if self._file.closed:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still locked, so no one locks a file about to go
        except OSError:
            pass
        self._file.close()


def check_output_path(path: Path) -> None:
    """Raise `InputError` if `path` cannot become a directory: it is a file, or lies under one."""
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: exists and is not a directory; choose another output directory")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{path}: {parent} is a file, so the output directory cannot be created there")
            break


class NullProgress:
    """Stands in for a `ProgressFile` where nothing should be written (before `start`, ranks other than 0)."""

    def update(self, *args: object, **kwargs: object) -> None:
        pass

    def finish(self, *args: object, **kwargs: object) -> None:
        pass


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def read_manifest(path: str | os.PathLike) -> dict:
    """The manifest of a finished run; raise `InputError` if the run is unfinished or not a run."""
    path = Path(path)
    if (path / INCOMPLETE).exists():
        try:
            info = read_json(path / INCOMPLETE) or {}
        except InputError:
            info = {}
        command = " ".join(["wb", *info.get("argv", [])[1:]])
        progress = read_progress(path) or {}
        if progress.get("state") == "failed":
            raise InputError(f"{path}: this run failed ({progress.get('error')}); it has no finished product "
                             f"(re-run `{command}` to retry it)")
        raise InputError(f"{path}: this run is unfinished (re-run `{command}` to complete it)")
    manifest = read_json(path / MANIFEST)
    if manifest is None:
        raise InputError(f"{path}: not a run directory (no {MANIFEST})")
    return manifest


def open_product(path: str | os.PathLike):
    """A run's parquet product `path` as a `pyarrow.parquet.ParquetFile`; raise `InputError` naming the file
    when it is missing or not readable parquet (a truncated copy, a file of another kind)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    try:
        return pq.ParquetFile(path)
    except FileNotFoundError:
        raise InputError(f"{path}: missing; the run directory lacks its product (was it copied in part?)") from None
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable parquet file ({str(exc).splitlines()[0]})") from None


def read_product(path: str | os.PathLike, columns: list[str] | None = None):
    """The table in a run's parquet product `path` (only `columns` when given); raise `InputError` naming the
    file when it is missing, unreadable, or lacks one of `columns`."""
    import pyarrow as pa

    file = open_product(path)
    missing = [c for c in columns or [] if c not in file.schema_arrow.names]
    if missing:
        raise InputError(f"{path}: has no column {missing[0]!r} (columns: {', '.join(file.schema_arrow.names)})")
    try:
        return file.read(columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable parquet file ({str(exc).splitlines()[0]})") from None


def run_data_files(path: str | os.PathLike) -> list[Path]:
    """The product files of a finished run: `data.parquet`, or the shards under `data/`."""
    path = Path(path)
    read_manifest(path)
    for name in (PRODUCT, PRODUCT_JSONL):
        if (path / name).exists():
            return [path / name]
    shards = sorted((path / SHARDS).glob("*.parquet")) if (path / SHARDS).is_dir() else []
    if not shards:
        raise InputError(f"{path}: the run holds no {PRODUCT} and no {SHARDS}/*.parquet shards")
    return shards
