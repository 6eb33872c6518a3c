"""The workspace's runs as rows (name, stage, state, rows, tokens, cost, wall time) for the Runs page:
`workbench.runs.run_info` for each run, named by its path in the workspace."""

from __future__ import annotations

from pathlib import Path

from app.workspace import run_name
from workbench.runfiles import PRODUCT
from workbench.runs import find_run_dirs, run_info

COLUMNS = ("name", "stage", "state", "phase", "done", "total", "rows_in", "rows_out", "prefill_tokens",
           "sampled_tokens", "trained_tokens", "cost_usd", "wall_seconds", "started_at", "error")


def list_runs(root: Path) -> list[dict]:
    """One row per run directory under the workspace, newest first."""
    rows = []
    for path in find_run_dirs(root):
        row = {**run_info(path, root), "name": run_name(root, path)}
        rows.append({k: row.get(k) for k in COLUMNS})
    return sorted(rows, key=lambda r: (r["started_at"] or "", r["name"]), reverse=True)


def runs_of_stage(root: Path, *stages: str) -> list[str]:
    """Names of the runs whose stage is one of `stages` (prefix match: `train` matches `train-sft`)."""
    return [r["name"] for r in list_runs(root) if r["stage"] and any(r["stage"].startswith(s) for s in stages)]


def runs_with_columns(root: Path, columns: set[str]) -> list[str]:
    """Names of finished runs whose `data.parquet` has all of `columns` (read from the parquet footer)."""
    import pyarrow.parquet as pq

    names = []
    for row in list_runs(root):
        path = Path(root) / row["name"] / PRODUCT
        if row["state"] != "complete" or not path.exists():
            continue
        try:
            if columns <= set(pq.read_schema(path).names):
                names.append(row["name"])
        except (OSError, ValueError):
            continue
    return names


def table_rows(rows: list[dict]) -> list[dict]:
    """The runs as the Runs page shows them: progress as "done / total unit" and no all-empty columns."""
    out = []
    for r in rows:
        row = dict(r)
        done, total = row.pop("done"), row.pop("total")
        row["progress"] = f"{done or 0:,} / {total:,}" if total else None
        out.append(row)
    keep = [k for k in out[0] if k in ("name", "stage", "state") or any(r[k] not in (None, 0) for r in out)] if out else []
    return [{k: r[k] for k in keep} for r in out]
