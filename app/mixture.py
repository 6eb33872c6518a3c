"""Mixture lab: the RegMix chain's files read back (proxy runs, cross-validated fit, chosen vs natural vs
uniform weights, Pareto front), the argv of a new `wb mix search` with changed constraints, and a sweep
seen live (proxies as they finish, the quick fit's rank correlation growing with them: `fit_curve.json`)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from workbench.errors import InputError
from workbench.runfiles import (
    FIT,
    FIT_CURVE,
    MIXTURE,
    MIXTURES,
    PARETO,
    PRODUCT,
    RESULTS,
    read_json,
    read_progress,
)


def _table(path: Path) -> pl.DataFrame | None:
    return pl.read_parquet(path) if path.exists() else None


def lab(search_dir: Path, root: Path) -> dict:
    """Everything the lab shows for one search run (and the fit and plan it names, which must lie in the
    workspace `root`: the app reads nothing outside it)."""
    from app.workspace import safe_path

    search_dir = Path(search_dir)
    mixture = read_json(search_dir / MIXTURE) or {}
    if not mixture.get("fit_dir") or not mixture.get("plan_dir"):
        raise InputError(f"{search_dir / MIXTURE}: missing, or names no fit_dir and plan_dir (not a `wb mix search` "
                         "run)")
    fit_dir = safe_path(root, mixture["fit_dir"])
    plan_dir = safe_path(root, mixture["plan_dir"])
    fit = read_json(fit_dir / FIT) or {}
    return {"mixture": mixture, "fit": fit, "fit_dir": fit_dir, "plan_dir": plan_dir,
            "weights": weights_table(mixture), "cv": cv_table(fit), "results": _table(plan_dir / RESULTS),
            "predictions": _table(fit_dir / PRODUCT), "pareto": _table(search_dir / PARETO)}


def weights_table(mixture: dict) -> pl.DataFrame:
    """Long table (domain, mixture, weight) for chosen, natural, uniform and best-single weights."""
    rows = []
    for label, key in (("chosen", "weights"), ("natural", "natural"), ("uniform", "uniform"), ("best single", "best_single")):
        for domain, weight in (mixture.get(key) or {}).items():
            rows.append({"domain": domain, "mixture": label, "weight": float(weight)})
    return pl.DataFrame(rows, schema={"domain": pl.String, "mixture": pl.String, "weight": pl.Float64})


def cv_table(fit: dict) -> pl.DataFrame:
    rows = [{"model": model, **{k: float(v) for k, v in scores.items()}} for model, scores in (fit.get("cv") or {}).items()]
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def search_argv(fit_dir: Path, output: Path, min_weight: dict[str, float], max_weight: dict[str, float],
                samples: int, top_k: int) -> list[str]:
    """`mix search FIT_DIR --output OUT --min-weight d=w ... --max-weight d=w ...` for the constraints given."""
    for name, bounds in (("min", min_weight), ("max", max_weight)):
        for domain, w in bounds.items():
            if not 0 <= w <= 1:
                raise InputError(f"{name} weight of {domain}: {w} is not between 0 and 1")
    for domain in min_weight.keys() & max_weight.keys():
        if min_weight[domain] > max_weight[domain]:
            raise InputError(f"{domain}: min weight {min_weight[domain]} is above max weight {max_weight[domain]}")
    argv = ["mix", "search", str(fit_dir), "--output", str(output), "--samples", str(samples), "--top-k", str(top_k)]
    if min_weight:
        argv += ["--min-weight", *(f"{d}={w:g}" for d, w in min_weight.items())]
    if max_weight:
        argv += ["--max-weight", *(f"{d}={w:g}" for d, w in max_weight.items())]
    return argv


def sweep(plan_dir: Path) -> dict:
    """A plan's sweep as it stands: state of `wb mix run` (None before one ran), finished and planned
    proxies, failed ones, the finished proxies newest first, and the rank-correlation curve."""
    plan_dir = Path(plan_dir)
    progress = read_progress(plan_dir) or {}
    results = _table(plan_dir / RESULTS)
    if results is not None and "finished_at" in results.columns:
        results = results.sort("finished_at", descending=True, nulls_last=True)
    planned = pl.scan_parquet(plan_dir / MIXTURES).select(pl.len()).collect().item() if (plan_dir / MIXTURES).exists() \
        else None
    failed = results.filter(pl.col("status") != "ok").height if results is not None and "status" in results.columns else 0
    curve = curve_table(read_json(plan_dir / FIT_CURVE) or {})
    last = curve.filter(pl.col("regressor") == "lightgbm").tail(1)["spearman"].to_list()
    return {"state": progress.get("state") if progress.get("stage") == "mix-run" else None,
            "finished": results.height if results is not None else 0, "planned": planned, "failed": failed,
            "eta_seconds": progress.get("eta_seconds"), "results": results, "curve": curve,
            "rank_corr": last[0] if last else None}


def curve_table(curve: dict) -> pl.DataFrame:
    """Long table (proxies, regressor, spearman) of a sweep's fit_curve.json, for a line chart."""
    rows = [{"proxies": int(p["proxies"]), "regressor": name, "spearman": float(p[name])}
            for p in curve.get("points", []) for name in ("lightgbm", "linear") if p.get(name) is not None]
    return pl.DataFrame(rows, schema={"proxies": pl.Int64, "regressor": pl.String, "spearman": pl.Float64})
