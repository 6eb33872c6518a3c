"""`wb mix run`: train one proxy per planned mixture and append its metrics to `results.parquet`.

Resumable run by run: every finished proxy is written to `results.parquet` (atomically) before the next
result is taken, and re-running the same command skips the runs already there. Proxies whose loss
diverges are kept with status "failed" and left out of the fit. Several worker processes share the
machine (one torch thread each).

    wb mix run runs/mix --workers 2
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import as_completed
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from mixopt.plan import domain_names, load_arrays, load_plan
from mixopt.proxy import ProxyConfig, train_proxy
from mixopt.results import read_results, weight_column, write_results
from workbench.config import as_plain
from workbench.errors import InputError
from workbench.progress import ProgressFile
from workbench.runfiles import MIXTURES, SWEEP, read_json, write_atomic
from workbench.workers import process_pool

_worker_state: dict = {}


def _init_worker(plan_dir: str) -> None:
    plan = load_plan(plan_dir)
    _worker_state["arrays"] = load_arrays(plan_dir, plan)


def _run_one(run_id: str, weights: dict[str, float], config: ProxyConfig) -> dict:
    train, evals = _worker_state["arrays"]
    try:
        metrics = train_proxy(train, weights, evals, config)
    except Exception as exc:  # a broken run is recorded, never lost or silently averaged
        metrics = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    return {"run_id": run_id, **metrics}


def check_sweep_config(plan_dir: Path, config: ProxyConfig) -> None:
    """Refuse to mix proxies trained differently in one results table."""
    path = plan_dir / SWEEP
    wanted = {k: v for k, v in as_plain(config).items() if k not in ("threads", "device")}  # same runs anywhere
    recorded = read_json(path)
    if recorded is not None:
        diff = sorted(k for k in wanted if recorded.get(k) != wanted[k])
        if diff:
            raise InputError(f"{plan_dir}: its results were trained with {diff[0]}={recorded.get(diff[0])!r}, "
                             f"not {wanted[diff[0]]!r}; use the same settings or a new plan directory")
    else:
        write_atomic(path, wanted)


def run_sweep(plan_dir: str | Path, config: ProxyConfig, workers: int = 1, limit: int | None = None,
              log=print) -> list[dict]:
    """Train every planned mixture not yet in results.parquet; return all result rows."""
    plan_dir = Path(plan_dir)
    plan = load_plan(plan_dir)
    names = domain_names(plan)
    check_sweep_config(plan_dir, config)
    mixtures = pq.read_table(plan_dir / MIXTURES).to_pylist()
    done = read_results(plan_dir)
    finished = {r["run_id"] for r in done}
    todo = [m for m in mixtures if m["run_id"] not in finished][:limit]
    log(f"{len(finished)} of {len(mixtures)} proxies already trained; training {len(todo)} "
        f"({config.model_size}, {config.steps} steps x {config.batch_size} x {config.context} bytes, {workers} workers)")
    started = time.time()
    progress = ProgressFile(plan_dir, "mix-run", unit="proxies", total=len(mixtures)).start()
    progress.update(done=len(finished), phase="training proxies", force=True)
    try:
        _train_all(plan_dir, config, workers, todo, names, done, progress, log, started)
    except KeyboardInterrupt:
        progress.finish("interrupted", "interrupted by a signal")
        raise
    except BaseException as exc:
        progress.finish("failed", f"{type(exc).__name__}: {exc}")
        raise
    progress.finish("complete" if len(done) == len(mixtures) else "interrupted",
                    None if len(done) == len(mixtures) else f"--limit left {len(mixtures) - len(done)} proxies to train")
    return done


def _train_all(plan_dir: Path, config: ProxyConfig, workers: int, todo: list[dict], names: list[str],
               done: list[dict], progress: ProgressFile, log, started: float) -> None:
    with process_pool(workers, _init_worker, (str(plan_dir),)) as pool:
        futures = {}
        for mixture in todo:
            weights = {n: mixture[weight_column(n)] for n in names}
            # the seed follows the run, not the order of training, so a resumed sweep equals a whole one
            run_config = replace(config, seed=config.seed + int(mixture["run_id"].rsplit("-", 1)[-1]))
            futures[pool.submit(_run_one, mixture["run_id"], weights, run_config)] = mixture
        for count, future in enumerate(as_completed(futures), 1):
            mixture = futures[future]
            result = {**mixture, **future.result()}
            done.append(result)
            write_results(plan_dir, done, names)
            elapsed = time.time() - started
            eta = elapsed / count * (len(todo) - count)
            summary = (f"mean bpb {np.mean([v for k, v in result.items() if k.startswith('bpb.')]):.3f}"
                       if result["status"] == "ok" else f"FAILED: {result['error']}")
            log(f"[{count}/{len(todo)}] {result['run_id']} {summary}  ({elapsed:.0f}s, eta {eta:.0f}s)")
            sys.stdout.flush()
            progress.update(done=len(done), failed=sum(r["status"] != "ok" for r in done))
