"""`wb mix predict FIT TABLE`: score new mixtures with a saved fit, and check them against results if any.

TABLE holds one row per mixture in the fit's weight columns (`w.<domain>`); its rows go through the same
checks as a fit's (sums within `--weight-tolerance` of 1 are renormalised). Each row gets the objective
predicted by LightGBM, the linear baseline and the log-linear law, and by each per-metric model. When
TABLE also holds the fit's target metrics (say, runs of a larger model on new mixtures) the actual
objective is computed with the fit's normalisation and the rank correlation of each regressor is
reported: the transfer check.

    wb mix predict runs/mix-fit runs/big-models.parquet --output runs/mix-predict
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from mixopt.fit import load_fit, read_weights, spearman
from mixopt.loglinear import predict_loglinear
from workbench.config import RunOptions, option
from workbench.errors import InputError
from workbench.io import open_source, write_table
from workbench.rundir import RunDir


@dataclass
class PredictConfig(RunOptions):
    """How `wb mix predict` reads the table of mixtures."""

    weight_tolerance: float = option(0.01, "rows whose weights sum within this of 1 are renormalised", min=0.0)


def predict_table(fit_dir: str | Path, X: np.ndarray) -> dict[str, np.ndarray]:
    """Predictions of every regressor of a fit for weight rows X (in the fit's domain order)."""
    import lightgbm

    fit, booster = load_fit(fit_dir)
    preds = {"pred_lightgbm": booster.predict(X), "pred_linear": X @ np.asarray(fit["linear_coef"])}
    if fit.get("loglinear"):
        preds["pred_loglinear"] = predict_loglinear(fit["loglinear"], X)
    for name, file in (fit.get("per_metric_models") or {}).items():
        try:
            model = lightgbm.Booster(model_file=str(Path(fit_dir) / file))
        except lightgbm.basic.LightGBMError as exc:
            raise InputError(f"{Path(fit_dir) / file}: not a readable LightGBM model ({str(exc).splitlines()[0]}); "
                             "re-run `wb mix fit`") from None
        preds[f"pred.{name}"] = model.predict(X)
    return preds


def actual_objective(table: pa.Table, targets: dict[str, dict]) -> np.ndarray | None:
    """The fit's objective (weighted z-scores with the fit's means and deviations), if TABLE has every metric."""
    if not all(name in table.column_names for name in targets):
        return None
    y = np.zeros(table.num_rows)
    for name, norm in targets.items():
        values = np.asarray(table[name].to_numpy(zero_copy_only=False), dtype=float)
        y += norm["weight"] * (values - norm["mean"]) / norm["std"]
    return y


def run_predict(fit_dir: str | Path, table_path: str | Path, output: str | Path | None, config: PredictConfig,
                log=print) -> dict:
    """Predict every row of `table_path`; write them to `output` (a run directory) if given; return a summary."""
    fit, _ = load_fit(fit_dir)
    source = open_source(table_path)
    table = source.read()
    if table.num_rows == 0:
        raise InputError(f"{table_path}: no rows to predict")
    X = read_weights(table, table_path, fit["weight_columns"], config.weight_tolerance, log)
    preds = predict_table(fit_dir, X)
    ids = (table["run_id"].to_pylist() if "run_id" in table.column_names
           else [str(i + 1) for i in range(table.num_rows)])
    y = actual_objective(table, fit["targets"])
    summary: dict = {"rows": table.num_rows, "targets": list(fit["targets"])}
    if y is not None:
        ok = np.isfinite(y)
        if ok.sum() >= 3:
            summary["spearman"] = {name.removeprefix("pred_"): round(spearman(y[ok], pred[ok]), 4)
                                   for name, pred in preds.items() if name.startswith("pred_")}
    columns = {"run_id": ids, **{c: X[:, j] for j, c in enumerate(fit["weight_columns"])}, **preds}
    if y is not None:
        columns["objective"] = y
    if output:
        with RunDir(output, "mix-predict", config, inputs=[source, {"path": str(fit_dir)}]) as run:
            write_table(pa.table(columns), run.product)
            run.finish(rows_in=table.num_rows, rows_out=table.num_rows, **summary)
    best = np.argsort(preds["pred_lightgbm"])
    log(f"{'row':<12} {'lightgbm':>9} {'linear':>9} {'loglinear':>9}" + (f" {'actual':>9}" if y is not None else ""))
    for i in best[:20]:
        log(f"{ids[i]!s:<12} {preds['pred_lightgbm'][i]:>9.3f} {preds['pred_linear'][i]:>9.3f} "
            f"{preds.get('pred_loglinear', preds['pred_linear'])[i]:>9.3f}" + (f" {y[i]:>9.3f}" if y is not None else ""))
    if len(best) > 20:
        log(f"... {len(best) - 20} more rows" + (f" in {output}/data.parquet" if output else ""))
    if "spearman" in summary:
        log("rank correlation with the actual objective: "
            + ", ".join(f"{k} {v:.3f}" for k, v in summary["spearman"].items()))
    return summary
