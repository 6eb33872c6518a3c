"""`wb validate SOURCE [--kind K]`: check every row; the first problem names file, row and field."""

from __future__ import annotations

import argparse

from workbench.errors import SchemaError
from workbench.io import open_source
from workbench.schemas import KIND_LABELS, KINDS, detect_kind, prompt_alias, validate_tables


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="a file, a directory of shards, a run directory, or hf://owner/name")
    parser.add_argument("--kind", choices=KINDS, help="the record kind to expect (default: detected)")
    parser.add_argument("--split", help="split of a DatasetDict directory or hub dataset")


def run(args: argparse.Namespace) -> int:
    source = open_source(args.source, split=args.split)
    kind = args.kind or detect_kind(source.schema())
    if kind == "unknown":
        alias = prompt_alias(source.schema())
        hint = f"; \"{alias}\" looks like a prompt column" if alias else ""
        raise SchemaError(f"{source.spec}: columns {source.schema().names} match no record kind "
                          f"({', '.join(KINDS)}){hint}")
    rows = validate_tables(source.iter_rows_with_file(), kind)
    print(f"{source.spec}: {rows:,} rows, all valid {KIND_LABELS[kind]}")
    return 0
