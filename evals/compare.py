"""`wb eval --compare RUN RUN...`: differences between evaluation runs, with a paired bootstrap over items.

Each run's per-item score is the share of its samples judged correct; the first run is the baseline and
every other run is compared with it on the items both scored (matched by benchmark and item id), so the
same hard items count against both. A difference "exceeds noise" when its 95% bootstrap interval
excludes zero.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evals.metrics import PairedDiff, paired_bootstrap
from workbench.errors import InputError
from workbench.rundir import read_manifest, read_product
from workbench.runfiles import PRODUCT


def item_scores(run: str | Path) -> dict[str, dict[str, float]]:
    """benchmark -> item id -> share of correct samples, from a finished `wb eval` run."""
    manifest = read_manifest(run)
    if manifest.get("stage") != "eval":
        raise InputError(f"{run}: not a `wb eval` run (it is `{manifest.get('stage')}`)")
    table = read_product(Path(run) / PRODUCT, ["benchmark", "item_id", "correct"])
    grouped = table.group_by(["benchmark", "item_id"]).aggregate([("correct", "mean")])
    out: dict[str, dict[str, float]] = {}
    for b, i, s in zip(*(grouped.column(c).to_pylist() for c in ("benchmark", "item_id", "correct_mean")),
                       strict=True):
        out.setdefault(b, {})[i] = float(s)
    return out


def compare_runs(runs: list[str], seed: int = 0) -> list[tuple[str, str, PairedDiff]]:
    """(benchmark, run, B-minus-baseline difference) for every later run and every shared benchmark."""
    if len(runs) < 2:
        raise InputError("--compare needs at least two `wb eval` runs (the first is the baseline)")
    base = item_scores(runs[0])
    rows = []
    for run in runs[1:]:
        other = item_scores(run)
        shared = [b for b in base if b in other]
        if not shared:
            raise InputError(f"{run}: shares no benchmark with {runs[0]}")
        for b in shared:
            items = sorted(set(base[b]) & set(other[b]))
            if not items:
                raise InputError(f"{run}: benchmark {b!r} shares no item with {runs[0]}")
            a = np.array([base[b][i] for i in items])
            c = np.array([other[b][i] for i in items])
            rows.append((b, run, paired_bootstrap(a, c, seed=seed)))
    return rows


def format_table(runs: list[str], rows: list[tuple[str, str, PairedDiff]]) -> str:
    """The comparison as an aligned text table (accuracies and differences in points)."""
    lines = [f"baseline: {runs[0]}",
             f"{'benchmark':<16} {'run':<32} {'items':>6} {'base':>7} {'run acc':>8} {'diff':>7} "
             f"{'95% CI of diff':>17} {'p':>6}  exceeds noise"]
    for b, run, d in rows:
        ci = f"[{100 * d.ci95[0]:+.1f}, {100 * d.ci95[1]:+.1f}]"
        lines.append(f"{b:<16} {str(run)[-32:]:<32} {d.items:>6} {100 * d.mean_a:>6.1f}% {100 * d.mean_b:>7.1f}% "
                     f"{100 * d.diff:>+7.1f} {ci:>17} {d.p_value:>6.3f}  {'yes' if d.significant else 'no'}")
    return "\n".join(lines)


