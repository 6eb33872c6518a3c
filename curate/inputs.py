"""The inputs of a curation command: one or more sources read as one stream with lineage columns.

Every batch carries `id` and `source` (added deterministically when the input lacks them) and has
one unified schema, so the same batches can be read again for a second pass. Each source's rows are
checked against the record kind its columns show (workbench/schemas.py), as `wb validate` and training
check them, so a row that training would refuse (a role "hacker") stops curation with the same error.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

from curate.fields import add_lineage, check_fields, default_fields
from workbench.errors import InputError
from workbench.io import Source, conform, open_source
from workbench.schemas import detect_kind, validate_table

# A text corpus row with a null text is dropped by the steps with reason `empty_text`, not refused.
CHECKED = ("sft", "preference", "rl_prompts")


class Inputs:
    """Sources read in the order given, as lineage-stamped Arrow batches with one schema."""

    def __init__(self, specs: list[str]):
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

    def batches(self) -> Iterator[pa.Table]:
        for source, kind in zip(self.sources, self.kinds, strict=True):
            for path, first_row, table in source.iter_rows_with_file():
                if kind in CHECKED:
                    validate_table(table, kind, path.name, first_row)
                yield conform(add_lineage(table, path, first_row), self.schema, str(path))


def _lineage_schema(schema: pa.Schema) -> pa.Schema:
    if "id" in schema.names:
        schema = schema.set(schema.get_field_index("id"), pa.field("id", pa.string()))
    else:
        schema = schema.append(pa.field("id", pa.string()))
    if "source" not in schema.names:
        schema = schema.append(pa.field("source", pa.string()))
    return schema
