"""`convert`: any supported source to one parquet or jsonl file, or to a run directory (`wb convert`)."""

from __future__ import annotations

import os
from pathlib import Path

from workbench.errors import InputError
from workbench.io import open_source, write_tables
from workbench.rundir import RunDir

WRITABLE = (".parquet", ".jsonl")


def convert(source: str | os.PathLike, output: str | os.PathLike, fmt: str | None = None, split: str | None = None,
            hub: bool = False) -> int:
    """Write `source` to OUTPUT.parquet / OUTPUT.jsonl, or to a run directory holding `data.<fmt>` and a
    manifest; return the rows written. Bad input raises `InputError` before anything is written."""
    src = open_source(source, split=split, hub=hub)
    schema = src.schema()  # reads enough to fail on bad input before anything is written
    output = Path(output)
    suffix = output.suffix.lower()
    if suffix in (".csv", ".json", ".txt", ".arrow", ".ndjson", ".pq"):
        raise InputError(f"{output}: cannot write {output.suffix}; write OUT.parquet, OUT.jsonl, or a directory")
    if fmt and suffix in WRITABLE and fmt != suffix[1:]:
        raise InputError(f"{output}: --format {fmt} contradicts the {output.suffix} suffix")
    if suffix in WRITABLE:
        return write_tables(src.iter_tables(), output, schema=schema)
    fmt = fmt or "parquet"
    with RunDir(output, "convert", {"format": fmt, "split": split}, inputs=[src]) as run:
        rows = write_tables(src.iter_tables(), output / f"data.{fmt}", schema=schema)
        run.finish(rows_in=rows, rows_out=rows)
    return rows
