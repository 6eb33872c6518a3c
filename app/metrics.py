"""Training curves from `metrics.jsonl`: read (a half-written last line is skipped), smooth (the debiased
exponential moving average TensorBoard uses) and downsample (long curves are thinned to a fixed number of
points before they reach the browser)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from workbench.runfiles import METRICS


def read_metrics(run_dir: Path) -> pl.DataFrame:
    """One row per logged step with its numeric metrics; an empty frame when there is no log yet."""
    rows = []
    try:
        with open(Path(run_dir) / METRICS) as f:
            for line in f:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue  # the line being written right now
                if isinstance(row, dict):
                    rows.append({k: float(v) for k, v in row.items()
                                 if isinstance(v, int | float) and not isinstance(v, bool)})
    except OSError:
        return pl.DataFrame()
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def metric_names(frame: pl.DataFrame) -> list[str]:
    """Metrics worth plotting: the numeric columns, loss-like ones first, without the step counter."""
    names = [c for c in frame.columns if c != "step"]
    first = [c for c in ("loss", "eval_loss", "reward", "rewards/margins", "kl", "margin") if c in names]
    return first + [c for c in names if c not in first]


def smooth(values: list[float], weight: float) -> list[float]:
    """Debiased EMA with `weight` in [0, 1): 0 leaves the values as they are."""
    if not 0 <= weight < 1:
        raise ValueError("smoothing weight must be in [0, 1)")
    out, last, norm = [], 0.0, 0.0
    for v in values:
        if v != v:  # NaN: keep the gap
            out.append(v)
            continue
        last = weight * last + (1 - weight) * v
        norm = weight * norm + (1 - weight)
        out.append(last / norm)
    return out


def downsample(frame: pl.DataFrame, max_points: int) -> pl.DataFrame:
    """Every k-th row so that at most `max_points` remain, always keeping the last one."""
    if frame.height <= max_points:
        return frame
    stride = -(-frame.height // max_points)
    picked = frame.with_row_index("_i").filter((pl.col("_i") % stride == 0) | (pl.col("_i") == frame.height - 1))
    return picked.drop("_i")


def curves(runs: dict[str, pl.DataFrame], metric: str, smoothing: float = 0.0, max_points: int = 500) -> pl.DataFrame:
    """Long table (run, step, value) of `metric` for several runs, smoothed then downsampled."""
    parts = []
    for name, frame in runs.items():
        if metric not in frame.columns or frame.height == 0:
            continue
        part = frame.select(pl.col("step") if "step" in frame.columns else pl.int_range(1, frame.height + 1).alias("step"),
                            pl.col(metric).alias("value")).drop_nulls("value")
        part = part.with_columns(pl.Series("value", smooth(part["value"].to_list(), smoothing), dtype=pl.Float64))
        parts.append(downsample(part, max_points).with_columns(pl.lit(name).alias("run")))
    if not parts:
        return pl.DataFrame(schema={"step": pl.Float64, "value": pl.Float64, "run": pl.String})
    return pl.concat([p.with_columns(pl.col("step").cast(pl.Float64)) for p in parts]).select("run", "step", "value")
