"""`wb convert SOURCE OUTPUT`: any supported source to parquet or jsonl.

OUTPUT ending in `.parquet` or `.jsonl` is written as that one file; any other OUTPUT becomes a run
directory holding `data.parquet` (or `data.jsonl` with `--format jsonl`) and `manifest.json`.
Both are written atomically.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="a file, a directory of shards, a run directory, or hf://owner/name")
    parser.add_argument("output", help="OUT.parquet, OUT.jsonl, or a directory for a run")
    parser.add_argument("--format", choices=("parquet", "jsonl"), help="format of a run directory's product")
    parser.add_argument("--split", help="split of a DatasetDict directory or hub dataset")
    parser.add_argument("--hub", action="store_true", help="treat SOURCE as a hub dataset id")


def run(args: argparse.Namespace) -> int:
    from workbench.config import RunOptions, build_config
    from workbench.convert import WRITABLE, convert
    from workbench.runfiles import MANIFEST, PRODUCT, PRODUCT_JSONL

    rows = convert(args.source, args.output, args.format, args.split, args.hub, build_config(RunOptions, args))
    if Path(args.output).suffix.lower() in WRITABLE:
        print(f"wrote {rows:,} rows to {args.output}")
    else:
        product = PRODUCT_JSONL if args.format == "jsonl" else PRODUCT
        print(f"wrote {rows:,} rows to {args.output}/{product} (manifest: {args.output}/{MANIFEST})")
    return 0
