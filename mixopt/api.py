"""The Python API of mixture search (RegMix): `plan_mixtures`, `train_proxies`, `merge_shards`, `fit_regressor`,
`search_mixture`, `predict_mixtures`, `build_corpus`, `confirm_mixture` (one per `wb mix` step).

The functions the CLI (`wb mix ...`) and the app call. Each checks its config, runs the step, and returns
a `RunResult` for the directory it wrote (`train_proxies` writes into the plan directory: its `results.parquet`
and `progress.json`). Bad input raises the same one-line `InputError` as the CLI.
"""

from __future__ import annotations

import os
from pathlib import Path

from mixopt.build import BuildConfig
from mixopt.fit import FitConfig
from mixopt.plan import PlanConfig
from mixopt.predict import PredictConfig
from mixopt.proxy import ProxyConfig
from mixopt.search import SearchConfig
from workbench.config import validate
from workbench.errors import InputError
from workbench.rundir import RunResult
from workbench.runfiles import RESULTS

PathLike = str | os.PathLike


def plan_mixtures(config: PlanConfig, domains: PathLike, output: PathLike) -> RunResult:
    """Read DOMAINS.yaml, store byte tokens, sample the proxy mixtures into `output`."""
    from mixopt.plan import make_plan

    validate(config)
    make_plan(domains, output, config)
    return RunResult.of(output)


def sweep_config(plan_dir: PathLike, config: ProxyConfig | None = None, **overrides: object) -> ProxyConfig:
    """The proxy settings of a sweep: the plan's token budget and model size unless `tokens_per_run` or
    `model_size` is given, so the plan's epoch caps hold for the proxies."""
    import dataclasses

    from mixopt.plan import load_plan

    config = config or ProxyConfig()
    plan = load_plan(plan_dir)
    overrides.setdefault("tokens_per_run", plan["constraints"]["tokens_per_run"])
    overrides.setdefault("model_size", plan.get("model_size", config.model_size))
    return dataclasses.replace(config, **overrides)


def train_proxies(plan_dir: PathLike, config: ProxyConfig | None = None, workers: int = 2, limit: int | None = None,
                  log=print, engine: str = "local", ray_address: str | None = None, gpus_per_proxy: float = 0.0,
                  shard: str | None = None) -> RunResult:
    """Train one proxy per planned mixture not trained yet (resumable) into `plan_dir/results.parquet`: in
    local worker processes, as Ray tasks (`engine="ray"`), or only shard `i/n` of them (into
    `plan_dir/shards/<i>-of-<n>/`, joined by `merge_shards`)."""
    from mixopt.sweep import run_sweep

    config = config or sweep_config(plan_dir)
    validate(config)
    if workers < 1:
        raise InputError(f"--workers {workers}: must be at least 1")
    if limit is not None and limit < 1:
        raise InputError(f"--limit {limit}: must be at least 1")
    rows = run_sweep(plan_dir, config, workers=workers, limit=limit, log=log, engine=engine, ray_address=ray_address,
                     gpus_per_proxy=gpus_per_proxy, shard=shard)
    # the sweep lives in the plan directory: its result is the plan's, plus results.parquet and counts
    manifest = dict(RunResult.of(plan_dir).manifest)
    manifest.update(stage="mix-run", outputs=sorted({*manifest.get("outputs", []), RESULTS}), engine=engine,
                    proxies=len(rows), failed=sum(r["status"] != "ok" for r in rows), shard=shard)
    return RunResult(Path(plan_dir), manifest)


def merge_shards(plan_dir: PathLike, shards: list[PathLike] | None = None) -> dict:
    """Join the shards of a sweep (`PLAN/shards/*`, or the results tables or folders `shards`) into
    `plan_dir/results.parquet`; return a summary (shards, rows, failed). Raises `InputError` naming a
    missing, repeated, unfinished or mismatched shard."""
    from mixopt.plan import domain_names, load_plan
    from mixopt.results import write_results
    from mixopt.shards import merge_shards as merge
    from workbench.rundir import DirLock
    from workbench.runfiles import SWEEP, write_atomic

    plan_dir = Path(plan_dir)
    names = domain_names(load_plan(plan_dir))
    lock = DirLock(plan_dir, "mix-merge")
    try:
        rows, summary = merge(plan_dir, list(shards or []))
        if not (plan_dir / SWEEP).exists():
            write_atomic(plan_dir / SWEEP, summary["sweep"])
        write_results(plan_dir, rows, names)
    finally:
        lock.release()
    return summary


def fit_regressor(config: FitConfig, results: PathLike, output: PathLike, log=print) -> RunResult:
    """Fit LightGBM, a linear baseline and the log-linear law from mixture weights to metrics, with k-fold scores."""
    from mixopt.fit import run_fit

    validate(config)
    run_fit(results, output, config, log=log)
    return RunResult.of(output)


def search_mixture(config: SearchConfig, fit_dir: PathLike, output: PathLike | None = None, log=print) -> RunResult:
    """Simulate mixtures, predict them with the fit, average the top k into `mixture.json`."""
    from mixopt.search import run_search

    validate(config)
    fit_dir = Path(fit_dir)
    output = output or fit_dir.parent / f"{fit_dir.name.removesuffix('-fit')}-search"
    run_search(fit_dir, output, config, log=log)
    return RunResult.of(output)


def predict_mixtures(config: PredictConfig, fit_dir: PathLike, table: PathLike, output: PathLike | None = None,
                     log=print) -> dict:
    """Score the mixtures of `table` with a saved fit (written to `output` when given); return a summary:
    rows, targets, and each regressor's rank correlation with the actual objective when `table` has it."""
    from mixopt.predict import run_predict

    validate(config)
    return run_predict(fit_dir, table, output, config, log=log)


def build_corpus(config: BuildConfig, mixture: PathLike, output: PathLike, log=print) -> RunResult:
    """Materialise the mixed corpus of `mixture.json`, sized by tokens or rows (rows keep `source_id`, `domain`,
    `epoch`, and the source columns every weighted domain has, e.g. question/answer for `wb train sft`)."""
    from mixopt.build import run_build

    validate(config)
    run_build(mixture, output, config, log=log)
    return RunResult.of(output)


def confirm_mixture(config: ProxyConfig, mixture: PathLike, output: PathLike, seeds: int = 3, workers: int = 2,
            log=print) -> RunResult:
    """Train proxies on the chosen, natural and uniform mixtures (several seeds) and compare them."""
    from mixopt.confirm import run_confirm

    validate(config)
    if seeds < 1 or workers < 1:
        raise InputError("--seeds and --workers must be at least 1")
    run_confirm(mixture, output, config, seeds=seeds, workers=workers, log=log)
    return RunResult.of(output)
