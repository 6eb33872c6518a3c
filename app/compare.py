"""Comparing two runs: config differences, row counts, drop reasons and the rows one has that the other
has not (by `id`, with lazy anti-joins so large products are not loaded)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from workbench.runfiles import PRODUCT


def flatten(value: object, prefix: str = "") -> dict[str, object]:
    """{"dedup.threshold": 0.8, ...} from nested dicts."""
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): value}


def config_diff(a: dict, b: dict) -> list[dict]:
    """The config keys (and input paths) whose values differ between two manifests (missing on one side
    shows as None)."""
    def inputs(m: dict) -> str:
        return " ".join(str(i.get("path", i)) if isinstance(i, dict) else str(i) for i in m.get("inputs") or [])

    fa = {**flatten(a.get("config") or {}), "(inputs)": inputs(a)}
    fb = {**flatten(b.get("config") or {}), "(inputs)": inputs(b)}
    return [{"option": k, "a": fa.get(k), "b": fb.get(k)} for k in sorted(fa.keys() | fb.keys()) if fa.get(k) != fb.get(k)]


def counts(a: dict, b: dict) -> list[dict]:
    """Rows, wall time and token usage side by side."""
    keys = [("rows_in", None), ("rows_out", None), ("wall_seconds", None)] + [
        (k, "usage") for k in ("requests", "prefill_tokens", "sampled_tokens", "trained_tokens", "cost_usd")]
    out = []
    for key, within in keys:
        va = (a.get(within) or {}).get(key) if within else a.get(key)
        vb = (b.get(within) or {}).get(key) if within else b.get(key)
        out.append({"measure": key, "a": va, "b": vb})
    return out


def drop_reasons(a: dict, b: dict) -> list[dict]:
    da, db = a.get("dropped") or {}, b.get("dropped") or {}
    return [{"reason": r, "a": da.get(r, 0), "b": db.get(r, 0)} for r in sorted(da.keys() | db.keys())]


def id_diff(a: Path, b: Path, sample: int = 20) -> dict | None:
    """Rows of run b's product not in run a's ("added") and the reverse ("removed"), by `id`; None when either
    run has no `data.parquet` with an `id` column."""
    pa, pb = Path(a) / PRODUCT, Path(b) / PRODUCT
    if not pa.exists() or not pb.exists():
        return None
    la, lb = pl.scan_parquet(pa), pl.scan_parquet(pb)
    if "id" not in la.collect_schema() or "id" not in lb.collect_schema():
        return None
    ids_a, ids_b = la.select(pl.col("id").cast(pl.String)), lb.select(pl.col("id").cast(pl.String))
    added = ids_b.join(ids_a, on="id", how="anti")
    removed = ids_a.join(ids_b, on="id", how="anti")
    return {"added": int(added.select(pl.len()).collect().item()),
            "removed": int(removed.select(pl.len()).collect().item()),
            "added_ids": added.head(sample).collect()["id"].to_list(),
            "removed_ids": removed.head(sample).collect()["id"].to_list()}


def eval_accuracy(a: dict, b: dict) -> list[dict] | None:
    """Accuracy per benchmark side by side (and B minus A in points) when both manifests are `wb eval` runs;
    None otherwise. A benchmark only one run scored shows None on the other side."""
    if a.get("stage") != "eval" or b.get("stage") != "eval":
        return None
    ma, mb = a.get("metrics") or {}, b.get("metrics") or {}
    rows = []
    for bench in sorted(ma.keys() | mb.keys()):
        va, vb = (ma.get(bench) or {}).get("accuracy"), (mb.get(bench) or {}).get("accuracy")
        diff = round(100 * (vb - va), 1) if va is not None and vb is not None else None
        rows.append({"benchmark": bench, "a": va, "b": vb, "b - a (points)": diff})
    return rows
