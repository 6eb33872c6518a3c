"""RegMix at small scale on the bundled domains: does the chosen mixture beat natural and uniform?

Runs the whole `wb mix` chain on examples/mixopt/domains.yaml (shakespeare, GSM8K solutions, Python
stdlib; target: MATH-500 solutions) and prints two tables: the regressors' k-fold fidelity (LightGBM
against the linear baseline) and the confirmation runs (chosen vs natural vs uniform mixture, mean of
seeds). Resumable: re-run with the same --output to continue an interrupted sweep.

    python bench/mixopt_small_scale.py --output runs/bench-mix --runs 48   # ~10-25 min on 2 cores
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mixopt.confirm import run_confirm
from mixopt.fit import FitConfig, run_fit
from mixopt.plan import PlanConfig, make_plan
from mixopt.proxy import ProxyConfig
from mixopt.search import SearchConfig, run_search
from mixopt.sweep import run_sweep
from workbench.runfiles import MANIFEST, MIXTURE, RESULTS

DOMAINS = Path(__file__).resolve().parent.parent / "examples" / "mixopt" / "domains.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="runs/bench-mix")
    parser.add_argument("--runs", type=int, default=48)
    parser.add_argument("--tokens-per-run", type=int, default=400_000)
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    out = Path(args.output)
    proxy = ProxyConfig(tokens_per_run=args.tokens_per_run)
    if not (out / "plan" / MANIFEST).exists():
        make_plan(DOMAINS, out / "plan", PlanConfig(runs=args.runs, tokens_per_run=args.tokens_per_run))
    started = time.time()
    rows = run_sweep(out / "plan", proxy, workers=args.workers)
    sweep_s = time.time() - started
    fit = run_fit(out / "plan" / RESULTS, out / "fit", FitConfig())
    run_search(out / "fit", out / "search", SearchConfig(samples=args.samples, top_k=100))
    confirm = run_confirm(out / "search" / MIXTURE, out / "confirm", proxy, seeds=args.seeds,
                          workers=args.workers)
    target = next(iter(fit["targets"]))
    print(f"\nsweep: {len(rows)} proxies ({proxy.model_size}, {proxy.tokens_per_run:,} tokens each), "
          f"{sweep_s / 60:.1f} min this session on {args.workers} workers")
    print("\n| regressor | k-fold Spearman | Pearson | MAE |\n|---|---|---|---|")
    for name, s in fit["cv"].items():
        print(f"| {name} | {s['spearman']:.3f} | {s['pearson']:.3f} | {s['mae']:.3f} |")
    print(f"\n| mixture | {target} (mean of {args.seeds} seeds) | vs chosen |\n|---|---|---|")
    means = {}
    for name in ("chosen", "natural", "uniform"):
        values = [r[target] for r in confirm if r["mixture"] == name]
        means[name] = sum(values) / len(values)
    for name, value in means.items():
        print(f"| {name} | {value:.4f} | {value - means['chosen']:+.4f} |")


if __name__ == "__main__":
    main()
