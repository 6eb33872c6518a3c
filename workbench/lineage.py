"""Row lineage across stages: from a row of any run back to the source file and row it came from.

Every stage keeps an `id` per row; a stage that derives rows keeps the id it derived them from in a parent
column (`prompt_id` for distill units, SFT rows and pairs; `source_id` for a built mixture), and every
manifest names its inputs. `trace(run, row_id)` follows that chain: in each run it looks for the id in the
products (kept) and in `removed.parquet` (dropped, with the stage and the reason), then moves to the input
that holds the parent id, until it reaches a plain source file, where it names the row.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from workbench.errors import InputError
from workbench.rundir import open_product, read_manifest
from workbench.runfiles import MANIFEST, PRODUCT, REMOVED, SFT, SHARDS, run_state

PARENT_COLUMNS = ("prompt_id", "source_id")
PRODUCTS = (PRODUCT, SFT)
MAX_HOPS = 32


@dataclass
class Hop:
    """One place the row was found: a run (stage, file, kept or dropped) or the source file it started in."""

    kind: str  # kept | dropped | source
    path: str
    stage: str | None
    row_id: str
    row: int | None = None  # 0-based row in the file
    reason: str | None = None
    detail: str | None = None
    parent_id: str | None = None
    fields: dict = field(default_factory=dict)


def _find(path: Path, row_id: str) -> tuple[int, dict] | None:
    """(row number, row) of the first row of parquet file `path` whose `id` is `row_id`; reads the id
    column one row group at a time and only the row group that holds the match."""
    pf = open_product(path)
    if "id" not in pf.schema_arrow.names:
        return None
    offset = 0
    for g in range(pf.num_row_groups):
        ids = pf.read_row_group(g, columns=["id"]).column(0)
        hits = pc.indices_nonzero(pc.equal(pc.cast(ids, pa.string()), row_id))
        if len(hits):
            i = hits[0].as_py()
            return offset + i, pf.read_row_group(g).slice(i, 1).to_pylist()[0]
        offset += len(ids)
    return None


def _summary(row: dict) -> dict:
    """The short columns of a row, for showing (long texts cut)."""
    out = {}
    for k, v in row.items():
        if isinstance(v, str):
            out[k] = v if len(v) <= 120 else v[:117] + "..."
        elif isinstance(v, int | float | bool) or v is None:
            out[k] = v
    return out


def _in_run(run: Path, row_id: str) -> Hop | None:
    manifest = read_manifest(run)
    stage = manifest.get("stage")
    products = [run / p for p in PRODUCTS if (run / p).exists()]
    products += sorted((run / SHARDS).glob("*.parquet")) if (run / SHARDS).is_dir() else []
    for path in products:
        found = _find(path, row_id)
        if found:
            row, values = found
            parent = next((str(values[c]) for c in PARENT_COLUMNS if values.get(c) is not None), row_id)
            return Hop("kept", str(path), stage, row_id, row, parent_id=parent, fields=_summary(values))
    removed = run / REMOVED
    if removed.exists():
        found = _find(removed, row_id)
        if found:
            row, values = found
            parent = next((str(values[c]) for c in PARENT_COLUMNS if values.get(c) is not None), row_id)
            return Hop("dropped", str(removed), stage, row_id, row, reason=values.get("reason"),
                       detail=None if values.get("detail") is None else str(values.get("detail")),
                       parent_id=parent, fields=_summary(values))
    return None


def _finished_run(path: Path) -> bool:
    """Whether an input is a finished run, to be searched as one (else it is read as a plain source)."""
    return path.is_dir() and run_state(path).state == "complete"


def _source_row(spec: str, row_id: str) -> Hop | None:
    """Where `row_id` sits in a plain source: by its `id` column, or by the ids stages give id-less rows
    (`<file stem>-<row>` from curate, the row number from distill and prefs)."""
    from workbench.io import open_source, row_ids

    try:
        source = open_source(spec)
    except InputError:
        return None
    offset = 0
    for path, first, table in source.iter_rows_with_file():
        ids = table.column("id") if "id" in table.column_names else None
        if ids is None:
            stamped = pa.array(row_ids(path, first, table.num_rows), pa.string())
            numbered = pa.array([str(offset + i) for i in range(table.num_rows)])
            hits = pc.indices_nonzero(pc.or_(pc.equal(stamped, row_id), pc.equal(numbered, row_id)))
        else:
            hits = pc.indices_nonzero(pc.equal(pc.cast(ids, pa.string()), row_id))
        if len(hits):
            i = hits[0].as_py()
            return Hop("source", str(path), None, row_id, first + i, fields=_summary(table.slice(i, 1).to_pylist()[0]))
        offset += table.num_rows
    return None


def _inputs(run: Path) -> list[str]:
    inputs = read_manifest(run).get("inputs") or []
    if not isinstance(inputs, list):
        raise InputError(f"{run / MANIFEST}: field `inputs` is {type(inputs).__name__}; expected a list")
    found = []
    for item in inputs:
        spec = item.get("path") if isinstance(item, dict) else item
        if isinstance(spec, str):
            found.append(spec)
    return found


def trace(run: str | os.PathLike, row_id: str) -> list[Hop]:
    """The chain of `row_id` from `run` back to its source row (first hop: `run`); raise `InputError` when
    the id is in neither the run nor anything upstream of it."""
    hops: list[Hop] = []
    current, wanted = Path(run), str(row_id)
    hop = _in_run(current, wanted)
    while len(hops) < MAX_HOPS:
        if hop is not None:
            hops.append(hop)
            wanted = hop.parent_id or wanted
        nxt: Path | None = None
        for spec in _inputs(current):
            path = Path(spec)
            if _finished_run(path):
                # the hop found while probing is the next run's hop: each run's files are read once
                hop = _in_run(path, wanted)
                if hop is not None or _upstream_has(path, wanted):
                    nxt = path
                    break
            else:
                src = _source_row(spec, wanted)
                if src is not None:
                    hops.append(src)
                    return hops
        if nxt is None:
            break
        current = nxt
    if not hops:
        raise InputError(f"{run}: no row with id {row_id!r} in this run or its inputs")
    return hops


def _upstream_has(run: Path, row_id: str, depth: int = 0) -> bool:
    """Whether `row_id` appears in a run upstream of `run` (a row dropped before `run` saw it)."""
    if depth > 8:
        return False
    for spec in _inputs(run):
        path = Path(spec)
        if _finished_run(path) and (_in_run(path, row_id) or _upstream_has(path, row_id, depth + 1)):
            return True
    return False


def format_chain(hops: list[Hop]) -> str:
    """Lines for `wb lineage`: one per hop, newest first, with the reason where a row was dropped."""
    lines = []
    for i, h in enumerate(hops):
        where = f"{h.path}" + (f" row {h.row}" if h.row is not None else "")
        if h.kind == "source":
            lines.append(f"{'  ' * i}<- source {where} (id {h.row_id})")
        elif h.kind == "dropped":
            lines.append(f"{'  ' * i}{'<- ' if i else ''}DROPPED by {h.stage}: {h.reason}"
                         + (f" ({h.detail})" if h.detail else "") + f" -- {where} (id {h.row_id})")
        else:
            lines.append(f"{'  ' * i}{'<- ' if i else ''}{h.stage}: {where} (id {h.row_id}"
                         + (f", from {h.parent_id}" if h.parent_id and h.parent_id != h.row_id else "") + ")")
    return "\n".join(lines)
