"""Profile a dataset source: its record kind, schema, row and null counts, lengths and sample rows.

`wb inspect SOURCE` prints this; the app shows the same dict. One streaming pass over the source.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from workbench.errors import SchemaError
from workbench.io import Source
from workbench.records import is_messages
from workbench.schemas import KIND_LABELS, detect_kind, prompt_alias, validate_table

SAMPLE_ROWS = 3


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _lengths(column: pa.Array) -> np.ndarray:
    """Characters per row: of the string, or of all message contents together."""
    if _is_string(column.type):
        return pc.fill_null(pc.utf8_length(column), 0).to_numpy(zero_copy_only=False)
    contents = column.flatten().field("content")
    if not _is_string(contents.type):
        return np.zeros(len(column), dtype=np.int64)
    chars = pc.fill_null(pc.utf8_length(contents), 0).to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(column).to_numpy(zero_copy_only=False)
    return np.bincount(parents, weights=chars, minlength=len(column)).astype(np.int64)


def _summary(values: list[np.ndarray]) -> dict:
    data = np.concatenate(values) if values else np.zeros(0)
    if data.size == 0:
        return {}
    return {
        "min": int(data.min()),
        "mean": round(float(data.mean()), 1),
        "p50": int(np.percentile(data, 50)),
        "p90": int(np.percentile(data, 90)),
        "max": int(data.max()),
    }


def profile(source: Source) -> dict:
    """Everything `wb inspect` reports about `source`, as a JSON-ready dict."""
    schema = source.schema()
    kind = detect_kind(schema)
    measured = [f.name for f in schema if _is_string(f.type) or is_messages(f.type)]
    rows = 0
    nulls = dict.fromkeys(schema.names, 0)
    lengths: dict[str, list[np.ndarray]] = {name: [] for name in measured}
    turns: dict[str, list[np.ndarray]] = {name: [] for name in measured if is_messages(schema.field(name).type)}
    samples: list[dict] = []
    problem = None
    for path, first_row, table in source.iter_rows_with_file():
        rows += table.num_rows
        for name in schema.names:
            nulls[name] += table[name].null_count
        for name in measured:
            column = table[name].combine_chunks()
            lengths[name].append(_lengths(column))
            if name in turns:
                turns[name].append(pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False))
        if len(samples) < SAMPLE_ROWS:
            samples.extend(table.slice(0, SAMPLE_ROWS - len(samples)).to_pylist())
        if kind != "unknown" and problem is None:
            try:
                validate_table(table, kind, path.name, first_row)
            except SchemaError as exc:
                problem = str(exc)
    report = {
        "source": source.spec,
        "format": source.format,
        "files": len(source.files),
        "kind": kind,
        "kind_label": KIND_LABELS[kind],
        "valid": problem is None if kind != "unknown" else None,
        "problem": problem,
        "rows": rows,
        "columns": {f.name: str(f.type) for f in schema},
        "nulls": nulls,
        "length_chars": {name: _summary(v) for name, v in lengths.items()},
        "turns": {name: _summary(v) for name, v in turns.items()},
        "samples": samples,
    }
    if kind == "unknown" and (alias := prompt_alias(schema)):
        report["hint"] = f"no standard columns; \"{alias}\" looks like a prompt column (prompt-taking commands accept --prompt-field {alias})"
    return report


def _short(value: object, width: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 1] + "…"


def format_report(report: dict) -> str:
    """The human-readable `wb inspect` output."""
    lines = [
        f"source   {report['source']}  ({report['format']}, {report['files']} file{'s' * (report['files'] != 1)})",
        f"kind     {report['kind_label']}" + (
            "" if report["valid"] is None else ("  (valid)" if report["valid"] else "  (INVALID)")),
        f"rows     {report['rows']:,}",
    ]
    if report.get("problem"):
        lines.append(f"problem  {report['problem']}")
    if report.get("hint"):
        lines.append(f"hint     {report['hint']}")
    lines.append("")
    lines.append(f"{'column':<24} {'type':<40} {'nulls':>8}")
    for name, dtype in report["columns"].items():
        lines.append(f"{name:<24} {_short(dtype, 40):<40} {report['nulls'][name]:>8,}")
    if any(report["length_chars"].values()):
        lines.append("")
        lines.append(f"{'length (chars)':<24} {'min':>8} {'mean':>10} {'p50':>8} {'p90':>8} {'max':>8}")
        for name, s in report["length_chars"].items():
            if s:
                lines.append(f"{name:<24} {s['min']:>8,} {s['mean']:>10,.1f} {s['p50']:>8,} {s['p90']:>8,} {s['max']:>8,}")
        for name, s in report["turns"].items():
            if s:
                lines.append(f"{name + ' (turns)':<24} {s['min']:>8,} {s['mean']:>10,.1f} {s['p50']:>8,} {s['p90']:>8,} {s['max']:>8,}")
    lines.append("")
    for i, row in enumerate(report["samples"], 1):
        lines.append(f"sample {i}")
        for key, value in row.items():
            lines.append(f"  {key}: {_short(value)}")
    return "\n".join(lines)
