"""The fit's rank correlation as a sweep's proxies finish (`fit_curve.json` in the plan directory).

While `wb mix run` trains, it cross-validates a quick fit of the finished proxies each time their number
has grown by half (8, 12, 18, 27, ...) and once at the end, so a user (and the Mixture lab) sees whether
more proxies still buy rank correlation. The quick fit is `wb mix fit`'s LightGBM and linear regressors
on its default targets, with fewer, larger boosting steps and 4 folds; `wb mix fit` gives the final word.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from workbench.errors import WorkbenchError
from workbench.runfiles import FIT_CURVE, RESULTS, read_json, write_atomic

FIRST = 8  # fewer finished proxies than this say nothing about rank correlation
GROWTH = 1.5


def _quiet(*_args, **_kwargs) -> None:
    pass


def quick_fit_scores(results: Path, domains: list[str]) -> dict | None:
    """Cross-validated Spearman of LightGBM and linear on `results`' default targets; None when the table
    cannot be fitted yet (too few usable runs, a constant target)."""
    from mixopt import fit

    config = fit.FitConfig(folds=4, num_iterations=200, learning_rate=0.05)
    try:
        targets = fit.parse_targets(fit.default_targets(results))
        data = fit.load_results(results, [], list(targets), domains, config.weight_tolerance, _quiet)
    except WorkbenchError:
        return None
    y, _ = fit.combine(data.metrics, targets)
    if len(data.X) < 4 or np.ptp(y) == 0:
        return None
    preds = fit.cross_validate(data.X, y, config, regressors=("lightgbm", "linear"))
    return {"runs": len(data.X), "targets": list(targets),
            **{name: fit.scores(y, pred)["spearman"] for name, pred in preds.items()}}


class FitCurve:
    """Appends a point to the plan directory's fit_curve.json when the finished proxies have grown enough."""

    def __init__(self, plan_dir: Path, domains: list[str]):
        self.plan_dir = plan_dir
        self.domains = domains
        self.points: list[dict] = (read_json(plan_dir / FIT_CURVE) or {}).get("points", [])

    def due(self, finished: int) -> bool:
        last = self.points[-1]["proxies"] if self.points else 0
        return finished >= FIRST and finished >= max(last + 1, math.ceil(last * GROWTH))

    def add(self, finished: int, final: bool = False) -> dict | None:
        """Fit and record a point for `finished` proxies if one is due (or `final` and not yet recorded)."""
        if not (self.due(finished) or (final and self.points and self.points[-1]["proxies"] != finished)):
            return None
        started = time.time()
        point = quick_fit_scores(self.plan_dir / RESULTS, self.domains)
        if point is None:
            return None
        point = {"proxies": finished, **point, "seconds": round(time.time() - started, 2)}
        self.points = [p for p in self.points if p["proxies"] < finished] + [point]
        write_atomic(self.plan_dir / FIT_CURVE, {"points": self.points})
        return point
