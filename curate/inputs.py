"""The inputs of a curation command: one or more sources read as one stream with lineage columns.

Every batch carries `id` and `source` (added deterministically when the input lacks them) and has
one unified schema, so the same batches can be read again for a second pass. Each source's rows are
checked against the record kind its columns show (workbench/schemas.py), as `wb validate` and training
check them, so a row that training would refuse (a role "hacker") stops curation with the same error;
with `on_bad_row="drop"` such rows are set aside instead (`split_invalid`) and handed to a callback with
the validator's message, so one bad row does not abort a whole run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyarrow as pa

from curate.fields import add_lineage, check_fields, default_fields
from workbench.errors import InputError, SchemaError
from workbench.io import Source, conform, open_source
from workbench.schemas import detect_kind, validate_table

# A text corpus row with a null text is dropped by the steps with reason `empty_text`, not refused.
CHECKED = ("sft", "preference", "rl_prompts")
ON_BAD_ROW = ("error", "drop")
# Called with the invalid rows of one batch (conformed, lineage-stamped) and one message per row.
BadRows = Callable[[pa.Table, list[str]], None]


class Inputs:
    """Sources read in the order given, as lineage-stamped Arrow batches with one schema."""

    def __init__(self, specs: list[str], on_bad_row: str = "error"):
        if on_bad_row not in ON_BAD_ROW:
            raise InputError(f"on_bad_row must be one of {', '.join(ON_BAD_ROW)}; got {on_bad_row!r}")
        self.on_bad_row = on_bad_row
        if not specs:
            raise InputError("no input given; pass one or more sources")
        self.sources: list[Source] = [open_source(spec) for spec in specs]
        self.kinds = [detect_kind(s.schema()) for s in self.sources]
        schemas = [_lineage_schema(s.schema()) for s in self.sources]
        try:
            self.schema = pa.unify_schemas(schemas, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InputError(f"the inputs disagree on column types: {exc}") from None

    def fields(self, requested: list[str]) -> list[str]:
        """The fields to read: `requested` checked against the schema, or the default for the record kind."""
        fields = list(requested) or default_fields(self.schema)
        check_fields(self.schema, fields, ", ".join(s.spec for s in self.sources))
        return fields

    def batches(self, bad_rows: BadRows | None = None) -> Iterator[pa.Table]:
        """The valid rows, batch by batch. An invalid row raises `SchemaError`, or with `on_bad_row="drop"`
        is left out and passed to `bad_rows` (re-reads pass none, so each bad row is reported once)."""
        for source, kind in zip(self.sources, self.kinds, strict=True):
            for path, first_row, table in source.iter_rows_with_file():
                invalid: dict[int, str] = {}
                if kind in CHECKED and self.on_bad_row == "error":
                    validate_table(table, kind, path.name, first_row)
                elif kind in CHECKED:
                    invalid = split_invalid(table, kind, path.name, first_row)
                stamped = conform(add_lineage(table, path, first_row), self.schema, str(path))
                if invalid:
                    rows = sorted(invalid)
                    if bad_rows is not None:
                        bad_rows(stamped.take(rows), [invalid[i] for i in rows])
                    stamped = stamped.filter(pa.array([i not in invalid for i in range(table.num_rows)]))
                yield stamped


def split_invalid(table: pa.Table, kind: str, where: str, first_row: int = 0) -> dict[int, str]:
    """{row index in `table`: the validator's message} for each invalid row; raise `SchemaError` when the
    fault is the column itself (a wrong type), which no row can be dropped for.

    The validator stops at its first fault, so halves that fail are split again: a batch with k bad rows
    costs about 2k log2(n) vectorised checks, and a clean batch costs one.
    """
    validate_table(table.slice(0, 0), kind, where, first_row)  # column-level faults show on zero rows
    found: dict[int, str] = {}

    def walk(start: int, length: int) -> None:
        try:
            validate_table(table.slice(start, length), kind, where, first_row + start)
        except SchemaError as exc:
            if length == 1:
                found[start] = str(exc)
                return
            half = length // 2
            walk(start, half)
            walk(start + half, length - half)

    if table.num_rows:
        walk(0, table.num_rows)
    return found


def _lineage_schema(schema: pa.Schema) -> pa.Schema:
    if "id" in schema.names:
        schema = schema.set(schema.get_field_index("id"), pa.field("id", pa.string()))
    else:
        schema = schema.append(pa.field("id", pa.string()))
    if "source" not in schema.names:
        schema = schema.append(pa.field("source", pa.string()))
    return schema
