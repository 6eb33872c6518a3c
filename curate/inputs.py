"""The inputs of a curation command: one or more sources read as one stream with lineage columns.

Every batch carries `id` and `source` (added deterministically when the input lacks them) and has
one unified schema, so the same batches can be read again for a second pass.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from curate.fields import add_lineage, check_fields, default_fields
from workbench.errors import InputError
from workbench.io import Source, conform, open_source


class Inputs:
    """Sources read in the order given, as lineage-stamped Arrow batches with one schema."""

    def __init__(self, specs: list[str]):
        if not specs:
            raise InputError("no input given; pass one or more sources")
        self.sources: list[Source] = [open_source(spec) for spec in specs]
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

    def batches(self) -> Iterator[pa.Table]:
        for source in self.sources:
            for path, first_row, table in source.iter_rows_with_file():
                yield conform(add_lineage(table, path, first_row), self.schema, str(path))


def _lineage_schema(schema: pa.Schema) -> pa.Schema:
    if "id" in schema.names:
        schema = schema.set(schema.get_field_index("id"), pa.field("id", pa.string()))
    else:
        schema = schema.append(pa.field("id", pa.string()))
    if "source" not in schema.names:
        schema = schema.append(pa.field("source", pa.string()))
    return schema
