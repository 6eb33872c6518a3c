"""`wb mix confirm`: train proxies on the chosen, natural and uniform mixtures and compare target losses.

This is the check that the search paid off: the chosen mixture should reach a lower target metric than
the natural and uniform mixtures at the same budget (use a larger `--model-size` or more tokens than
the sweep to see whether the ranking transfers). Per-run results go to the output run's `data.parquet`.

    wb mix confirm runs/mix-search/mixture.json --output runs/mix-confirm --seeds 3
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from mixopt.build import read_mixture
from mixopt.proxy import ProxyConfig
from mixopt.sweep import _init_worker, _run_one
from workbench.errors import InputError
from workbench.io import write_table
from workbench.rundir import RunDir
from workbench.workers import process_pool


def run_confirm(mixture_path: str | Path, output: str | Path, config: ProxyConfig, seeds: int = 3,
                workers: int = 2, log=print) -> list[dict]:
    mixture = read_mixture(mixture_path)
    plan_dir = mixture.get("plan_dir")
    if not plan_dir or "natural" not in mixture or "targets" not in mixture:
        raise InputError(f"{mixture_path}: confirm needs a mixture.json written by `wb mix search` "
                         "(with plan_dir, natural and targets)")
    candidates = {"chosen": mixture["weights"], "natural": mixture["natural"], "uniform": mixture["uniform"]}
    targets = list(mixture["targets"])
    jobs = [(name, seed) for name in candidates for seed in range(seeds)]
    with RunDir(output, "mix-confirm", config, inputs=[{"path": str(mixture_path)}]) as run:
        with process_pool(workers, _init_worker, (plan_dir,)) as pool:
            futures = [pool.submit(_run_one, f"{name}-{seed}", candidates[name], replace(config, seed=1000 + seed))
                       for name, seed in jobs]
            rows = [{"mixture": name, "seed": seed, **f.result()} for (name, seed), f in zip(jobs, futures, strict=True)]
        failed = [r for r in rows if r["status"] != "ok"]
        if failed:
            raise InputError(f"confirmation run {failed[0]['run_id']} failed: {failed[0]['error']}")
        metric_names = sorted(k for k in rows[0] if k.startswith("bpb."))
        write_table(pa.table({"mixture": [r["mixture"] for r in rows], "seed": [r["seed"] for r in rows],
                              **{m: [r[m] for r in rows] for m in metric_names}}), run.product)
        summary = {name: {t: float(np.mean([r[t] for r in rows if r["mixture"] == name])) for t in targets}
                   for name in candidates}
        run.finish(rows_out=len(rows), summary=summary)
    log(f"{'mixture':<10} " + " ".join(f"{t:>16}" for t in targets) + f"   (mean of {seeds} seeds)")
    for name in candidates:
        log(f"{name:<10} " + " ".join(f"{summary[name][t]:>16.4f}" for t in targets))
    return rows
