"""The demo's result table and notes, read from the eval runs of each stage: accuracy with its interval,
the 9-10 digit items, the change against the baseline row (paired bootstrap; across seeds with `--seeds`),
and how much the leaked benchmark copies would have inflated a score.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from demo.stages import Row
from workbench.rundir import read_manifest
from workbench.runfiles import PRODUCT


def accuracy(run: Path) -> tuple[float, list[float]]:
    m = read_manifest(run)["metrics"]["heldout"]
    return m["accuracy"], m["ci95"]


def item_results(run: Path) -> list[tuple[str, bool]]:
    """(question, correct) per held-out item of a `wb eval` run (one greedy sample each)."""
    import pyarrow.parquet as pq

    rows = pq.read_table(run / PRODUCT, columns=["prompt", "correct"]).to_pylist()
    return [(r["prompt"][-1]["content"], bool(r["correct"])) for r in rows]


def long_accuracy(run: Path) -> float:
    """Accuracy on the 9-10 digit items, the lengths the user's own data lacks."""
    hits = [ok for question, ok in item_results(run) if len(question.split()[-1]) > 8]
    return sum(hits) / max(len(hits), 1)


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0


def change(base: list[Path], runs: list[Path]) -> tuple[str, str]:
    """(change in points, whether it exceeds noise) of `runs` against `base`, seed by seed: one seed uses a
    paired bootstrap over items; several seeds also need every seed to agree in sign and be significant."""
    from evals import compare_runs

    diffs = [compare_runs([str(b), str(r)])[0][2] for b, r in zip(base, runs, strict=True)]
    points = [100 * d.diff for d in diffs]
    mean = sum(points) / len(points)
    if len(diffs) == 1:
        d = diffs[0]
        return f"{mean:+.1f}", f"{'yes' if d.significant else 'no'} (p={d.p_value:.3f})"
    sd = mean_sd(points)[1]
    agree = sum(d.significant and (d.diff > 0) == (mean > 0) for d in diffs)
    verdict = "yes" if agree == len(diffs) else "no" if agree == 0 else f"{agree}/{len(diffs)} seeds"
    return f"{mean:+.1f} ± {sd:.1f}", verdict


def table(rows: dict[str, Row]) -> str:
    """The demo's result table (see the module docstring)."""
    head = (f"{'stage':<30} {'held-out accuracy':>22} {'9-10 digits':>12} {'change':>14} {'exceeds noise':>16} "
            f"{'tokens':>11} {'cost':>8} {'wall s':>7}")
    lines = [head, "-" * len(head)]
    for row in rows.values():
        accs = [accuracy(r) for r in row.evals]
        longs = [100 * long_accuracy(r) for r in row.evals]
        if len(accs) == 1:
            a, ci = accs[0]
            shown = f"{100 * a:.1f}% [{100 * ci[0]:.1f}-{100 * ci[1]:.1f}]"
            long_shown = f"{longs[0]:.1f}%"
        else:
            values = [100 * a for a, _ in accs]
            mean, sd = mean_sd(values)
            shown = f"{mean:.1f} ± {sd:.1f}% [{min(values):.0f}-{max(values):.0f}]"
            long_shown = "{:.1f} ± {:.1f}%".format(*mean_sd(longs))
        base = rows.get(row.baseline or "")
        diff, noise = change(base.evals, row.evals) if base is not None else ("", "")
        if base is not None and row.baseline != list(rows)[list(rows).index(row.stage) - 1]:
            diff = f"{diff} vs {row.baseline.split()[0]}"
        lines.append(f"{row.stage:<30} {shown:>22} {long_shown:>12} {diff:>14} {noise:>16} {row.tokens:>11,} "
                     f"${row.cost:>7.4f} {row.seconds:>7.1f}")
    return "\n".join(lines)


def leak_note(raw_task: Path, leaky_eval: Path, curated: Path, leak_steps: int) -> str:
    """How a model trained on the target domain's filtered rows with the leaked benchmark copies still in
    them (no decontamination, no dedup) scores on those items against the rest: the inflated score that
    decontamination prevents. `raw_task`: the target domain's raw file; `leaky_eval`: that model's eval run."""
    import pyarrow.parquet as pq

    leaked = {r["question"] for r in map(json.loads, raw_task.open()) if r["id"].startswith("leak-")}
    results = item_results(leaky_eval)
    hit = [ok for q, ok in results if q in leaked]
    rest = [ok for q, ok in results if q not in leaked]
    if not hit or not rest:
        return "no held-out item leaked into the raw data"
    overall = 100 * sum(ok for _, ok in results) / len(results)
    clean = 100 * sum(rest) / len(rest)
    curated_questions = pq.read_table(curated / PRODUCT, columns=["question"]).column("question")
    left = len(leaked & set(curated_questions.to_pylist()))
    return (f"contamination: trained on the target domain's filtered rows with the benchmark copies left in (no "
            f"decontamination or dedup; {leak_steps} steps, seed 0), a model scores "
            f"{100 * sum(hit) / len(hit):.1f}% on the {len(hit)} leaked items and "
            f"{clean:.1f}% on the other {len(rest)}, so its benchmark score of {overall:.1f}% is inflated by "
            f"{overall - clean:+.1f} points; after curation {left} leaked items are left in the data")
