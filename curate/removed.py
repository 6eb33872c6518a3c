"""The two outputs of a curation run written side by side: kept rows and removed rows with reasons.

`removed.parquet` holds the removed rows' own columns plus `reason` (stable snake_case), `detail`
(for people), and for duplicates `duplicate_of` (the kept row's id), `cluster_id` and `similarity`.
Both files are written under temporary names and renamed into place only when complete.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from workbench.io import conform
from workbench.runfiles import REMOVED, temp_path

REMOVED_FIELDS = pa.schema([
    ("reason", pa.string()), ("detail", pa.string()), ("duplicate_of", pa.string()),
    ("cluster_id", pa.string()), ("similarity", pa.float64()),
])


def removed_schema(schema: pa.Schema) -> pa.Schema:
    names = set(REMOVED_FIELDS.names)
    return pa.schema([f for f in schema if f.name not in names] + list(REMOVED_FIELDS))


def with_reasons(rows: pa.Table, reasons: list[str], details: list[str | None],
                 duplicate_of: list[str | None] | None = None, cluster_id: list[str | None] | None = None,
                 similarity: list[float | None] | None = None) -> pa.Table:
    """`rows` with the removal columns appended (dedup columns null unless given)."""
    n = rows.num_rows
    rows = rows.drop_columns([c for c in REMOVED_FIELDS.names if c in rows.column_names])
    values = [reasons, details, duplicate_of or [None] * n, cluster_id or [None] * n, similarity or [None] * n]
    for field, value in zip(REMOVED_FIELDS, values, strict=True):
        rows = rows.append_column(field, pa.array(value, field.type))
    return rows


class Outputs:
    """Streams kept rows to `product` and removed rows to `removed.parquet`, counting reasons."""

    def __init__(self, product: Path, schema: pa.Schema):
        self.paths = {"kept": product, "removed": product.parent / REMOVED}
        self.schemas = {"kept": schema, "removed": removed_schema(schema)}
        self.writers = {k: pq.ParquetWriter(temp_path(p), self.schemas[k], compression="zstd")
                        for k, p in self.paths.items()}
        self.reasons: Counter[str] = Counter()
        self.kept = 0

    def write(self, kept: pa.Table | None, removed: pa.Table | None) -> None:
        if kept is not None and kept.num_rows:
            self.writers["kept"].write_table(conform(kept, self.schemas["kept"], str(self.paths["kept"])))
            self.kept += kept.num_rows
        if removed is not None and removed.num_rows:
            self.writers["removed"].write_table(conform(removed, self.schemas["removed"], REMOVED))
            self.reasons.update(removed["reason"].to_pylist())

    def close(self) -> None:
        for key, writer in self.writers.items():
            writer.close()
            os.replace(temp_path(self.paths[key]), self.paths[key])

    def abort(self) -> None:
        for key, writer in self.writers.items():
            writer.close()
            temp_path(self.paths[key]).unlink(missing_ok=True)
