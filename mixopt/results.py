"""The results table of a proxy sweep (`results.parquet` in a plan directory, or in a shard's directory
under it): its columns, and reading and writing it. `wb mix run` appends to it; `wb mix plan --reuse` seeds
it with an earlier sweep's runs; a shard's table carries what it is a shard of in its schema metadata."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from workbench.io import write_table
from workbench.runfiles import RESULTS


def weight_column(domain: str) -> str:
    return f"w.{domain}"


def read_results(directory: Path) -> list[dict]:
    path = directory / RESULTS
    return pq.read_table(path).to_pylist() if path.exists() else []


def write_results(directory: Path, rows: list[dict], names: list[str], metadata: dict[str, str] | None = None) -> None:
    """Write `rows` sorted by run id: weights, status, error, reused_from, and the float metrics (with
    `metadata` in the schema, for a shard's table)."""
    rows = sorted(rows, key=lambda r: r["run_id"])
    metric_keys = sorted({k for r in rows for k in r if k.startswith("bpb.")})
    columns = {"run_id": [r["run_id"] for r in rows]}
    for n in names:
        columns[weight_column(n)] = [r[weight_column(n)] for r in rows]
    for key in ("status", "error", "reused_from"):
        columns[key] = pa.array([r.get(key) for r in rows], pa.string())
    for key in ["train_loss", "tokens", "seconds", "finished_at", *metric_keys]:  # finished_at: unix time, for live views
        columns[key] = pa.array([r.get(key) for r in rows], pa.float64())
    write_table(pa.table(columns, metadata=metadata), directory / RESULTS)
