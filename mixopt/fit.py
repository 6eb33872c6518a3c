"""`wb mix fit`: regress the validation metric on the mixture weights (LightGBM; linear and log-linear beside it).

RESULTS is our `results.parquet` or any table with one weight column per domain (`w.<domain>`, or named
with `--weights`) and metric columns. Several `--target METRIC[:WEIGHT]` combine as a weighted sum of
z-normalised metrics, minimised (a negative weight maximises that metric). All three regressors are scored by
k-fold cross-validation (Spearman, Pearson, MAE on out-of-fold predictions); early stopping is never run
on held-out folds. LightGBM uses RegMix's settings, with `min_child_samples` scaled to the number of runs
so that it can split at all on small sweeps.

    wb mix fit runs/mix/results.parquet --output runs/mix-fit --target bpb.math500
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from mixopt.loglinear import fit_loglinear, predict_loglinear
from mixopt.plan import domain_names, plan_in
from workbench.config import RunOptions, option
from workbench.errors import InputError
from workbench.io import open_source, write_table
from workbench.rundir import RunDir
from workbench.runfiles import FIT, read_json, write_atomic

WEIGHT_PREFIX = "w."
REGRESSORS = ("lightgbm", "linear", "loglinear")


@dataclass
class FitConfig(RunOptions):
    """Targets and regressor settings for `wb mix fit`."""

    target: list[str] = option([], "METRIC[:WEIGHT] to minimise; several combine as a weighted sum of z-scores")
    weights: list[str] = option([], "weight columns (default: every column named w.<domain>)")
    folds: int = option(8, "k for k-fold cross-validation", min=2)
    num_iterations: int = option(1000, "LightGBM trees (RegMix: 1000)", min=1)
    learning_rate: float = option(0.01, "LightGBM learning rate (RegMix: 0.01)")
    min_child_samples: int = option(0, "LightGBM min_child_samples; 0 = max(2, runs // 20)")
    seed: int = option(42, "LightGBM and fold seed")
    weight_tolerance: float = option(0.01, "rows whose weights sum within this of 1 are renormalised (RegMix's "
                                     "CSVs are rounded to 3 decimals); beyond it a row is refused", min=0.0)


@dataclass
class Dataset:
    """The rows a fit uses: weights X (runs x domains) and each metric's values."""

    domains: list[str]
    weight_columns: list[str]
    X: np.ndarray
    metrics: dict[str, np.ndarray]
    run_ids: list[str]
    excluded: int  # failed runs
    excluded_reused: int = 0  # reused runs without a target metric


def parse_targets(specs: list[str]) -> dict[str, float]:
    targets: dict[str, float] = {}
    for spec in specs:
        name, _, weight = spec.rpartition(":") if ":" in spec else (spec, "", "1")
        try:
            targets[name] = float(weight)
        except ValueError:
            raise InputError(f"--target {spec!r}: expected METRIC or METRIC:WEIGHT with a numeric weight") from None
    return targets


def read_weights(table: pa.Table, path: str | Path, weight_columns: list[str], tolerance: float = 0.01,
                 log=print, row_numbers: np.ndarray | None = None) -> np.ndarray:
    """The weight matrix (rows x columns) of `table`, rows renormalised to sum to 1.

    A row whose weights sum within `tolerance` of 1 is renormalised, with one warning line for all such
    rows; a missing, negative or NaN weight, or a sum beyond the tolerance, raises `InputError` naming the row
    (its 1-based number in the file: `row_numbers` maps rows of a filtered table back).
    """
    row = (lambda i: int(row_numbers[i])) if row_numbers is not None else (lambda i: i + 1)
    missing = [c for c in weight_columns if c not in table.column_names]
    if missing:
        raise InputError(f"{path}: no column {missing[0]!r}; columns are {table.column_names}")
    for c in weight_columns:
        kind = table.schema.field(c).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind)):
            raise InputError(f"{path}: weight column {c!r} holds {kind}, not numbers (a weight such as 0.25)")
    X = np.column_stack([np.asarray(table[c].to_numpy(zero_copy_only=False), dtype=float) for c in weight_columns])
    for j, column in enumerate(weight_columns):
        bad = np.flatnonzero(~np.isfinite(X[:, j]) | (X[:, j] < 0))
        if len(bad):
            raise InputError(f"{path}: row {row(bad[0])}: weight column {column!r} is NaN, missing or negative")
    sums = X.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1) > tolerance)
    if len(off):
        raise InputError(f"{path}: row {row(off[0])}: weights sum to {sums[off[0]]:.4f}, not 1 "
                         f"(tolerance {tolerance:g}, --weight-tolerance)")
    inexact = np.abs(sums - 1) > 1e-6
    if inexact.any():
        log(f"warning: {path}: {int(inexact.sum())} rows have weights summing to {sums[inexact].min():.4f}"
            f"-{sums[inexact].max():.4f}, not 1; renormalised them")
    return X / sums[:, None]


def load_results(path: str | Path, weight_columns: list[str], targets: list[str],
                 expected_domains: list[str] | None = None, tolerance: float = 0.01, log=print) -> Dataset:
    """Read a results table and check it; failed runs are excluded, anything else wrong is an error.

    Runs reused from an earlier sweep (`reused_from` set) that lack a target metric (a domain or
    validation set added since) are left out of this fit and counted in `excluded_reused`.
    """
    table = open_source(path).read()
    names = table.column_names
    weight_columns = weight_columns or [c for c in names if c.startswith(WEIGHT_PREFIX)]
    for domain in expected_domains or []:
        if WEIGHT_PREFIX + domain not in weight_columns:
            raise InputError(f"{path}: no weight column {WEIGHT_PREFIX + domain!r} for domain {domain!r} of the plan")
    if len(weight_columns) < 2:
        raise InputError(f"{path}: found {len(weight_columns)} weight columns; name them w.<domain> "
                         "or list them with --weights")
    missing = [c for c in [*weight_columns, *targets] if c not in names]
    if missing:
        raise InputError(f"{path}: no column {missing[0]!r}; columns are {names}")
    keep = np.ones(table.num_rows, bool)
    if "status" in names:
        keep &= np.array([s == "ok" for s in table["status"].to_pylist()])
    excluded = int((~keep).sum())
    if "reused_from" in names:
        reused = np.array([r is not None for r in table["reused_from"].to_pylist()])
        for name in targets:
            keep &= ~(reused & np.array([v is None for v in table[name].to_pylist()]))
    excluded_reused = int((~keep).sum()) - excluded
    table = table.filter(pa.array(keep))
    rows = np.flatnonzero(keep) + 1
    X = read_weights(table, path, weight_columns, tolerance, log, rows)
    run_ids = table["run_id"].to_pylist() if "run_id" in names else [str(i) for i in range(table.num_rows)]
    metrics = {}
    for name in targets:
        values = np.asarray(table[name].to_numpy(zero_copy_only=False), dtype=float)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise InputError(f"{path}: row {rows[bad[0]]}: metric {name!r} is NaN or missing "
                             "(mark failed runs with status != 'ok' to exclude them)")
        metrics[name] = values
    if len(X) < 4:
        raise InputError(f"{path}: {len(X)} usable runs; a fit needs at least 4 (RegMix used 512)")
    domains = [c.removeprefix(WEIGHT_PREFIX) for c in weight_columns]
    return Dataset(domains, weight_columns, X, metrics, run_ids, excluded, excluded_reused)


def combine(metrics: dict[str, np.ndarray], targets: dict[str, float]) -> tuple[np.ndarray, dict]:
    """The objective: sum of weight * z-score per metric; returns it and the normalisation used."""
    y = np.zeros(len(next(iter(metrics.values()))))
    norm = {}
    for name, weight in targets.items():
        mean, std = float(metrics[name].mean()), float(metrics[name].std() or 1.0)
        y += weight * (metrics[name] - mean) / std
        norm[name] = {"weight": weight, "mean": mean, "std": std}
    return y, norm


def lgbm_params(config: FitConfig, n: int) -> dict:
    return {
        "objective": "regression", "metric": ["l1", "l2"], "learning_rate": config.learning_rate,
        "num_iterations": config.num_iterations, "seed": config.seed, "verbose": -1, "num_threads": 1,  # small tables: threads only add OpenMP contention

        "min_child_samples": config.min_child_samples or max(2, n // 20), "min_data_in_bin": 1,
        "deterministic": True, "force_row_wise": True,
    }


def fit_lgbm(X: np.ndarray, y: np.ndarray, params: dict):
    import lightgbm

    return lightgbm.train(params, lightgbm.Dataset(X, y, params={"min_data_in_bin": 1, "verbose": -1}))


def fit_linear(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares on the weights (they sum to 1, so this includes an intercept)."""
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    return coef


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def scores(actual: np.ndarray, predicted: np.ndarray) -> dict:
    return {"spearman": round(spearman(actual, predicted), 4),
            "pearson": round(float(np.corrcoef(actual, predicted)[0, 1]), 4),
            "mae": round(float(np.abs(actual - predicted).mean()), 4)}


def cross_validate(X: np.ndarray, y: np.ndarray, config: FitConfig,
                   regressors: tuple[str, ...] = REGRESSORS) -> dict[str, np.ndarray]:
    """Out-of-fold predictions of each regressor named in `regressors` ("lightgbm", "linear", "loglinear")."""
    k = min(config.folds, len(X))
    order = np.random.default_rng(config.seed).permutation(len(X))
    preds = {name: np.zeros(len(X)) for name in regressors}
    for fold in np.array_split(order, k):
        train = np.setdiff1d(order, fold)
        if "lightgbm" in preds:
            preds["lightgbm"][fold] = fit_lgbm(X[train], y[train], lgbm_params(config, len(train))).predict(X[fold])
        if "linear" in preds:
            preds["linear"][fold] = X[fold] @ fit_linear(X[train], y[train])
        if "loglinear" in preds:
            preds["loglinear"][fold] = predict_loglinear(fit_loglinear(X[train], y[train]), X[fold])
    return preds


def best_regressor(report: dict[str, dict]) -> str:
    """The regressor with the highest k-fold rank correlation; ties go to LightGBM, and one whose
    predictions were constant (NaN correlation) never wins."""
    return max(REGRESSORS, key=lambda name: np.nan_to_num(report[name]["spearman"], nan=-np.inf))


def plot_predictions(y: np.ndarray, preds: dict[str, np.ndarray], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.scatter(y, preds["linear"], s=14, alpha=0.6, label="linear", marker="x")
    ax.scatter(y, preds["loglinear"], s=14, alpha=0.6, label="log-linear", marker="+")
    ax.scatter(y, preds["lightgbm"], s=14, alpha=0.8, label="LightGBM")
    low, high = float(min(y.min(), preds["lightgbm"].min())), float(max(y.max(), preds["lightgbm"].max()))
    ax.plot([low, high], [low, high], color="grey", linewidth=1)
    ax.set_xlabel("actual objective (z-score sum)")
    ax.set_ylabel("predicted (out of fold)")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def default_targets(path: str | Path) -> list[str]:
    """Without --target: the extra validation sets if the plan had any, else every domain's bpb."""
    names = open_source(path).schema().names
    bpb = [c for c in names if c.startswith("bpb.")]
    plan = plan_in(Path(path).parent)
    extra = [f"bpb.{v['name']}" for v in plan["validation"]] if plan else []
    if extra:
        return extra
    if not bpb:
        raise InputError(f"{path}: no bpb.* columns; name the metric to fit with --target")
    return bpb


def run_fit(results: str | Path, output: str | Path, config: FitConfig, log=print) -> dict:
    """Fit, cross-validate, save the models and the plot into a run directory; return fit.json."""
    targets = parse_targets(config.target or default_targets(results))
    plan = plan_in(Path(results).parent)
    expected = domain_names(plan) if plan else None
    data = load_results(results, config.weights, list(targets), expected, config.weight_tolerance, log)
    if config.folds > len(data.X):
        raise InputError(f"--folds {config.folds}: there are only {len(data.X)} usable proxy runs in {results}; "
                         f"pass --folds {len(data.X)} or fewer")
    y, norm = combine(data.metrics, targets)
    output = Path(output)
    source = open_source(results)
    with RunDir(output, "mix-fit", config, inputs=[source]) as run:
        preds = cross_validate(data.X, y, config)
        report = {name: scores(y, pred) for name, pred in preds.items()}
        params = lgbm_params(config, len(data.X))
        fit_lgbm(data.X, y, params).save_model(str(output / "model.objective.txt"))
        per_metric = {}
        if len(targets) > 1:
            for name, values in data.metrics.items():
                fit_lgbm(data.X, values, params).save_model(str(output / f"model.{name}.txt"))
                per_metric[name] = f"model.{name}.txt"
        plot_predictions(y, preds, output / "predicted_vs_actual.png",
                         f"{' + '.join(targets)}: LightGBM rho={report['lightgbm']['spearman']:.3f}, "
                         f"linear {report['linear']['spearman']:.3f}, log-linear {report['loglinear']['spearman']:.3f}")
        # the training mixtures travel with the fit: search samples where they live and measures its distance
        write_table(pa.table({"run_id": data.run_ids, **{c: data.X[:, j] for j, c in enumerate(data.weight_columns)},
                              "objective": y, **{f"pred_{name}": pred for name, pred in preds.items()}}), run.product)
        plan_dir = Path(results).parent if plan else None
        fit = {
            "domains": data.domains, "weight_columns": data.weight_columns, "targets": norm,
            "runs": len(data.X), "excluded_failed_runs": data.excluded,
            "excluded_reused_runs": data.excluded_reused, "folds": min(config.folds, len(data.X)),
            "cv": report, "linear_coef": fit_linear(data.X, y).tolist(), "loglinear": fit_loglinear(data.X, y),
            "per_metric_models": per_metric, "lightgbm_params": params,
            "plan_dir": str(plan_dir.resolve()) if plan_dir else None,
            "better": best_regressor(report),
        }
        write_atomic(output / FIT, fit)
        dropped = {"failed_run": data.excluded, "reused_run_without_metric": data.excluded_reused}
        run.finish(rows_in=len(data.X) + data.excluded + data.excluded_reused, rows_out=len(data.X),
                   dropped={k: v for k, v in dropped.items() if v}, cv=report)
    log(f"{'regressor':<10} {'spearman':>9} {'pearson':>9} {'mae':>8}   ({len(data.X)} runs, {fit['folds']}-fold CV)")
    for name, s in report.items():
        log(f"{name:<10} {s['spearman']:>9.3f} {s['pearson']:>9.3f} {s['mae']:>8.3f}")
    if fit["better"] != "lightgbm":
        log(f"note: the {fit['better']} regressor ranks mixtures better than LightGBM on this sweep "
            f"(`wb mix search --regressor {fit['better']}` ranks candidates with it)")
    return fit


def load_fit(fit_dir: str | Path) -> tuple[dict, object]:
    """fit.json and the objective booster of a finished fit directory."""
    import lightgbm

    from workbench.rundir import read_manifest

    fit_dir = Path(fit_dir)
    read_manifest(fit_dir)
    fit = read_json(fit_dir / FIT)
    if fit is None:
        raise InputError(f"{fit_dir}: not a mixture fit (no {FIT}); create one with `wb mix fit`")
    check_fit(fit, fit_dir / FIT)
    model = fit_dir / "model.objective.txt"
    try:
        return fit, lightgbm.Booster(model_file=str(model))
    except lightgbm.basic.LightGBMError as exc:
        raise InputError(f"{model}: not a readable LightGBM model ({str(exc).splitlines()[0]}); re-run "
                         "`wb mix fit`") from None


def check_fit(fit: dict, path: Path) -> None:
    """Raise `InputError` naming the field when fit.json lacks what predicting needs or holds the wrong type."""
    columns, coef, targets = fit.get("weight_columns"), fit.get("linear_coef"), fit.get("targets")
    if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
        raise InputError(f"{path}: field `weight_columns` must be a list of column names; found {columns!r:.60}")
    if not isinstance(coef, list) or len(coef) != len(columns) or \
            not all(isinstance(v, int | float) and not isinstance(v, bool) for v in coef):
        raise InputError(f"{path}: field `linear_coef` must be {len(columns)} numbers (one per weight column); "
                         f"found {coef!r:.60}")
    if not isinstance(targets, dict) or not all(
            isinstance(t, dict) and all(isinstance(t.get(k), int | float) for k in ("weight", "mean", "std"))
            for t in targets.values()):
        raise InputError(f"{path}: field `targets` must map each metric to its weight, mean and std; found "
                         f"{targets!r:.60}")
    law = fit.get("loglinear")
    if law is not None and not (isinstance(law, dict) and isinstance(law.get("c"), int | float)
                                and isinstance(law.get("t"), list) and len(law["t"]) == len(columns)):
        raise InputError(f"{path}: field `loglinear` must be {{\"c\": number, \"t\": {len(columns)} numbers}}; "
                         f"found {law!r:.60}")
    models = fit.get("per_metric_models")
    if models is not None and not (isinstance(models, dict) and all(isinstance(f, str) for f in models.values())):
        raise InputError(f"{path}: field `per_metric_models` must map metric names to model files; found "
                         f"{models!r:.60}")
