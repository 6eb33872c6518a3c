"""`wb validate SOURCE [--kind K] [--prompt-field F]`: check every row; the first problem names file, row
and field. `--prompt-field question` (and `--completion-field answer`) read a column under the name its
record kind uses, as distill and training do, so GSM8K-style question/answer files validate."""

from __future__ import annotations

import argparse

from workbench.errors import SchemaError
from workbench.io import open_source
from workbench.schemas import KIND_LABELS, KINDS, detect_kind, prompt_alias, validate_tables


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="a file, a directory of shards, a run directory, or hf://owner/name")
    parser.add_argument("--kind", choices=KINDS, help="the record kind to expect (default: detected)")
    parser.add_argument("--split", help="split of a DatasetDict directory or hub dataset")
    parser.add_argument("--prompt-field", help="column holding the prompt (default: `prompt`); e.g. question")
    parser.add_argument("--completion-field", help="column holding the completion (default: `completion`); "
                                                   "e.g. answer")


def run(args: argparse.Namespace) -> int:
    import pyarrow as pa

    source = open_source(args.source, split=args.split)
    names = source.schema().names
    rename = {k: v for k, v in ((args.prompt_field, "prompt"), (args.completion_field, "completion")) if k and k != v}
    for column in rename:
        if column not in names:
            raise SchemaError(f"{source.spec}: no column {column!r} (named by a --*-field option); columns are {names}")
    renamed = [rename.get(n, n) for n in names]
    kind = args.kind or detect_kind(pa.schema([(n, pa.null()) for n in renamed]))
    if kind == "unknown":
        alias = prompt_alias(source.schema())
        hint = f"; \"{alias}\" looks like a prompt column: pass --prompt-field {alias}" if alias else ""
        raise SchemaError(f"{source.spec}: columns {names} match no record kind ({', '.join(KINDS)}){hint}")
    tables = ((path, first, table.rename_columns([rename.get(n, n) for n in table.column_names]))
              for path, first, table in source.iter_rows_with_file())
    rows = validate_tables(tables, kind)
    print(f"{source.spec}: {rows:,} rows, all valid {KIND_LABELS[kind]}")
    return 0
