"""`wb convert SOURCE OUTPUT`: any supported source to parquet or jsonl.

OUTPUT ending in `.parquet` or `.jsonl` is written as that one file; any other OUTPUT becomes a run
directory holding `data.parquet` (or `data.jsonl` with `--format jsonl`) and `manifest.json`.
Both are written atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.errors import InputError
from workbench.io import open_source, write_tables
from workbench.rundir import RunDir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="a file, a directory of shards, a run directory, or hf://owner/name")
    parser.add_argument("output", help="OUT.parquet, OUT.jsonl, or a directory for a run")
    parser.add_argument("--format", choices=("parquet", "jsonl"), help="format of a run directory's product")
    parser.add_argument("--split", help="split of a DatasetDict directory or hub dataset")
    parser.add_argument("--hub", action="store_true", help="treat SOURCE as a hub dataset id")


def run(args: argparse.Namespace) -> int:
    source = open_source(args.source, split=args.split, hub=args.hub)
    schema = source.schema()  # reads enough to fail on bad input before anything is written
    output = Path(args.output)
    if output.suffix.lower() in (".csv", ".json", ".txt", ".arrow", ".ndjson", ".pq"):
        raise InputError(f"{output}: cannot write {output.suffix}; write OUT.parquet, OUT.jsonl, or a directory")
    if args.format and output.suffix.lower() in (".parquet", ".jsonl") and args.format != output.suffix[1:].lower():
        raise InputError(f"{output}: --format {args.format} contradicts the {output.suffix} suffix")
    if output.suffix.lower() in (".parquet", ".jsonl"):
        rows = write_tables(source.iter_tables(), output, schema=schema)
        print(f"wrote {rows:,} rows to {output}")
        return 0
    fmt = args.format or "parquet"
    with RunDir(output, "convert", {"format": fmt, "split": args.split}, inputs=[source]) as run_dir:
        rows = write_tables(source.iter_tables(), output / f"data.{fmt}", schema=schema)
        run_dir.finish(rows_in=rows, rows_out=rows)
    print(f"wrote {rows:,} rows to {output}/data.{fmt} (manifest: {output}/manifest.json)")
    return 0
