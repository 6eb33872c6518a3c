"""`convert`: any supported source to one parquet or jsonl file, or to a run directory (`wb convert`)."""

from __future__ import annotations

import os
from pathlib import Path

from workbench.config import RunOptions
from workbench.errors import InputError
from workbench.io import open_source, write_tables
from workbench.rundir import RunDir
from workbench.runfiles import PRODUCT, PRODUCT_JSONL

WRITABLE = (".parquet", ".jsonl")


def convert(source: str | os.PathLike, output: str | os.PathLike, fmt: str | None = None, split: str | None = None,
            hub: bool = False, options: RunOptions | None = None) -> int:
    """Write `source` to OUTPUT.parquet / OUTPUT.jsonl, or to a run directory holding `data.<fmt>` and a
    manifest (written as `options` say: overwrite, the command recorded); return the rows written. Bad
    input raises `InputError` before anything is written."""
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
    options = options or RunOptions()
    with RunDir(output, "convert", {"format": fmt, "split": split}, inputs=[src], overwrite=options.overwrite,
                argv=options.argv) as run:
        rows = write_tables(src.iter_tables(), output / (PRODUCT_JSONL if fmt == "jsonl" else PRODUCT), schema=schema)
        run.finish(rows_in=rows, rows_out=rows)
    return rows
