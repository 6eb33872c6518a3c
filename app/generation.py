"""Generation monitor numbers (distill, prefs, eval): from the run's durable ledger while it runs (read
only, so the job is never blocked) and from `data.parquet` once it is finished, plus `progress.json`
for done/total, rate and cost."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import polars as pl

from workbench.runfiles import PRODUCT, RunState
from workbench.runs import BILLED_KINDS

LEDGER = "ledger.sqlite"


def _ledger_units(run_dir: Path) -> pl.DataFrame | None:
    path = Path(run_dir) / LEDGER
    if not path.exists():
        return None
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
        try:
            cur = con.execute("SELECT status, finish_reason, error, prompt_tokens, completion_tokens, attempts, "
                              "finished_at FROM units")
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return None
    if not rows:
        return None
    return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)


def _verdicts(run_dir: Path) -> tuple[int, int]:
    """(passed, checked) verdicts in the ledger."""
    try:
        con = sqlite3.connect(f"file:{Path(run_dir) / LEDGER}?mode=ro", uri=True, timeout=1.0)
        try:
            passed, checked = con.execute("SELECT COALESCE(SUM(verified = 1), 0), COUNT(verified) FROM verdicts").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return 0, 0
    return int(passed or 0), int(checked or 0)


def error_kind(error: str | None) -> str | None:
    """`RateLimitError: 429 ...` -> `RateLimitError`; the first word of an error names its kind."""
    if not error:
        return None
    return error.split(":", 1)[0].split()[0][:60]


def stats(run_dir: Path, state: RunState) -> dict:
    """Done, total, failed, truncated, retries, tokens, rates, cost so far and projected, error kinds,
    verification pass rate."""
    run_dir = Path(run_dir)
    units = None
    if state.finished and (run_dir / PRODUCT).exists():
        lf = pl.scan_parquet(run_dir / PRODUCT)
        cols = lf.collect_schema()
        want = [c for c in ("status", "finish_reason", "error", "prompt_tokens", "completion_tokens", "attempts",
                            "verified", "billing") if c in cols]
        units = lf.select(want).collect() if "status" in want else None
    if units is None:
        units = _ledger_units(run_dir)
    out: dict = {"done": state.done, "total": state.total, "rate": state.rate, "eta_seconds": state.eta_seconds,
                 "in_flight": state.extra.get("in_flight"), "failed": state.extra.get("failed"),
                 "truncated": state.extra.get("truncated"),
                 "requests": state.usage.get("requests"), "cost_usd": state.usage.get("cost_usd"),
                 "prefill_tokens": state.usage.get("prefill_tokens"), "sampled_tokens": state.usage.get("sampled_tokens"),
                 # tokens the response cache answered (free) and the part of the paid ones sent as a batch
                 **{k: state.usage.get(k) for k in BILLED_KINDS}}
    if units is not None and units.height:
        status = units["status"].cast(pl.String)
        out["finished_units"] = units.height
        out["failed"] = int((status == "failed").sum())
        out["truncated"] = int((status == "truncated").sum())
        out["ok"] = int((status == "ok").sum())
        out["retries"] = int((units["attempts"].fill_null(1) - 1).clip(0).sum()) if "attempts" in units.columns else None
        paid = units.filter(pl.col("billing") != "cached") if "billing" in units.columns else units
        if out["prefill_tokens"] is None:
            out["prefill_tokens"] = int(paid["prompt_tokens"].fill_null(0).sum())
        if out["sampled_tokens"] is None:
            out["sampled_tokens"] = int(paid["completion_tokens"].fill_null(0).sum())
        kinds = units["error"].cast(pl.String).map_elements(error_kind, return_dtype=pl.String).drop_nulls() \
            if "error" in units.columns else pl.Series([], dtype=pl.String)
        out["error_kinds"] = dict(sorted(kinds.value_counts().iter_rows(), key=lambda kv: -kv[1])) if len(kinds) else {}
        if "verified" in units.columns and units["verified"].drop_nulls().len():
            v = units["verified"].drop_nulls()
            out["verified"], out["checked"] = int(v.cast(pl.Int64).sum()), len(v)
    if "checked" not in out and (run_dir / LEDGER).exists():
        out["verified"], out["checked"] = _verdicts(run_dir)
    out["pass_rate"] = out["verified"] / out["checked"] if out.get("checked") else None
    if out["done"] is None:
        out["done"] = out.get("finished_units")
    seconds = state.wall_seconds
    if out.get("done") and seconds:
        out["rate"] = out["rate"] or out["done"] / seconds
    if seconds and out.get("sampled_tokens"):
        out["tokens_per_minute"] = out["sampled_tokens"] / seconds * 60
    cost, done, total = out.get("cost_usd"), out.get("done"), out.get("total")
    out["projected_cost_usd"] = cost * total / done if cost is not None and done and total else cost
    return out


STATUSES = ("ok", "truncated", "failed")


def samples(run_dir: Path, n: int = 20, offset: int = 0, status: str | None = None) -> list[dict]:
    """Generations for the sample viewer, filtered by `status` (ok, truncated, failed; None: all): the
    finished product's rows (prompt, answer, reasoning, status, verdict, full error) once the run has one,
    else the units finished so far from the ledger, newest first (prompt id, answer, status, error)."""
    path = Path(run_dir) / PRODUCT
    if path.exists():
        lf = pl.scan_parquet(path)
        if status and "status" in lf.collect_schema():
            lf = lf.filter(pl.col("status") == status)
        return lf.slice(offset, n).collect().to_dicts()
    return _ledger_samples(Path(run_dir), n, offset, status)


def _ledger_samples(run_dir: Path, n: int, offset: int, status: str | None) -> list[dict]:
    path = run_dir / LEDGER
    if not path.exists():
        return []
    where, params = ("WHERE status = ?", [status]) if status else ("", [])
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
        try:
            cur = con.execute("SELECT prompt_id AS id, sample_index, status, reasoning, content, finish_reason, "
                              f"error, attempts FROM units {where} ORDER BY finished_at DESC LIMIT ? OFFSET ?",
                              [*params, int(n), int(offset)])
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        finally:
            con.close()
    except sqlite3.Error:
        return []


def error_messages(run_dir: Path, limit: int = 20) -> list[dict]:
    """The distinct full error messages of failed units with their counts, most frequent first (the
    product's `error` column once finished, else the ledger's)."""
    path = Path(run_dir) / PRODUCT
    if path.exists():
        lf = pl.scan_parquet(path)
        if "error" not in lf.collect_schema():
            return []
        errors = lf.select(pl.col("error").cast(pl.String)).drop_nulls().collect()["error"]
    else:
        units = _ledger_units(Path(run_dir))
        if units is None:
            return []
        errors = units["error"].cast(pl.String).drop_nulls()
    counts = errors.filter(errors != "").value_counts(sort=True).head(limit)
    return [{"count": int(c), "error": e} for e, c in counts.select(["error", "count"]).iter_rows()]
