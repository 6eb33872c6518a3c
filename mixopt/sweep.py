"""`wb mix run`: train one proxy per planned mixture and append its metrics to `results.parquet`.

Resumable run by run: every finished proxy is written to `results.parquet` (atomically) before the next
result is taken, and re-running the same command skips the runs already there, so a killed driver costs
only the proxies in flight. Proxies whose loss diverges are kept with status "failed" and left out of the
fit. Each run's seed follows its run id, so any engine, order or split gives the same numbers. Engines:

- local (default): worker processes on this machine (one torch thread each);
- ray (`--engine ray [--ray-address ADDR] [--gpus-per-proxy 0.25]`): one Ray task per proxy (`ray_proxies.py`);
- shards (`--shard i/n`, for clusters without Ray, e.g. a Slurm array): shard i trains every n-th mixture
  into `shards/<i>-of-<n>/results.parquet`, and `wb mix merge` joins them (`shards.py`).

One sweep writes a results table at a time: it holds the directory's run lock (`.run-lock`) while it works.

    wb mix run runs/mix --workers 2
    wb mix run runs/mix --engine ray --ray-address head:6379 --gpus-per-proxy 0.25
    wb mix run runs/mix --shard 3/8   # then: wb mix merge runs/mix
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from concurrent.futures import as_completed
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from mixopt.curve import FitCurve
from mixopt.plan import domain_names, load_arrays, load_plan
from mixopt.proxy import ProxyConfig, preload
from mixopt.proxy_runs import comparable, run_settings, train_run
from mixopt.results import read_results, write_results
from mixopt.shards import Shard, parse_shard, shard_dir, shard_metadata
from workbench.errors import InputError
from workbench.progress import ProgressFile
from workbench.rundir import DirLock
from workbench.runfiles import MIXTURES, SWEEP, read_json, write_atomic
from workbench.workers import process_pool

ENGINES = ("local", "ray")
_worker_state: dict = {}


def _init_worker(plan_dir: str) -> None:
    plan = load_plan(plan_dir)
    _worker_state["arrays"] = load_arrays(plan_dir, plan)


def _run_one(run_id: str, weights: dict[str, float], config: ProxyConfig) -> dict:
    return train_run(_worker_state["arrays"], run_id, weights, config)


def check_sweep_config(plan_dir: Path, config: ProxyConfig) -> None:
    """Refuse to mix proxies trained differently in one results table."""
    path = plan_dir / SWEEP
    wanted = comparable(config)
    recorded = read_json(path)
    if recorded is not None:
        diff = sorted(k for k in wanted if recorded.get(k) != wanted[k])
        if diff:
            raise InputError(f"{plan_dir}: its results were trained with {diff[0]}={recorded.get(diff[0])!r}, "
                             f"not {wanted[diff[0]]!r}; use the same settings or a new plan directory")
    else:
        write_atomic(path, wanted)


def check_engine(engine: str, ray_address: str | None, gpus_per_proxy: float, shard: str | None) -> None:
    """Raise `InputError` for an unknown engine or a flag that needs another engine."""
    if engine not in ENGINES:
        raise InputError(f"--engine {engine!r}: must be one of {', '.join(ENGINES)}")
    if engine != "ray" and (ray_address or gpus_per_proxy):
        raise InputError(f"--{'ray-address' if ray_address else 'gpus-per-proxy'} needs --engine ray")
    if gpus_per_proxy < 0:
        raise InputError(f"--gpus-per-proxy {gpus_per_proxy}: must be at least 0")
    if shard and engine == "ray":
        raise InputError("--shard splits a sweep over machines without Ray; with --engine ray one driver runs it all")


def run_sweep(plan_dir: str | Path, config: ProxyConfig, workers: int = 1, limit: int | None = None,
              log=print, engine: str = "local", ray_address: str | None = None, gpus_per_proxy: float = 0.0,
              shard: str | None = None) -> list[dict]:
    """Train every planned mixture (of this shard) not yet in its results table; return that table's rows.

    Raises `InputError` for bad flags, settings that differ from the sweep's, or a directory another
    sweep is writing."""
    plan_dir = Path(plan_dir)
    check_engine(engine, ray_address, gpus_per_proxy, shard)
    part = parse_shard(shard) if shard else None
    plan = load_plan(plan_dir)
    out_dir = shard_dir(plan_dir, part) if part else plan_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = DirLock(out_dir, "mix-run")  # two sweeps appending to one table would drop each other's rows
    try:
        check_sweep_config(plan_dir, config)
        return _sweep(plan_dir, plan, out_dir, part, config, workers, limit, log, engine, ray_address, gpus_per_proxy)
    finally:
        lock.release()


def _sweep(plan_dir: Path, plan: dict, out_dir: Path, part: Shard | None, config: ProxyConfig, workers: int,
           limit: int | None, log, engine: str, ray_address: str | None, gpus_per_proxy: float) -> list[dict]:
    names = domain_names(plan)
    mixtures = pq.read_table(plan_dir / MIXTURES).to_pylist()
    earlier = read_results(plan_dir)  # for a shard: reused runs, and runs an earlier merge brought in
    done = read_results(out_dir) if part else earlier
    finished = {r["run_id"] for r in earlier} | {r["run_id"] for r in done}
    mine = mixtures if part is None else part.of(mixtures)
    waiting = [m for m in mine if m["run_id"] not in finished]
    todo = waiting[:limit]
    done_before = len(mine) - len(waiting)
    metadata = shard_metadata(plan_dir, part, config) if part else None
    log(f"{f'shard {part.label}: ' if part else ''}{done_before} of {len(mine)} proxies already trained; "
        f"training {len(todo)} ({config.model_size}, {config.steps} steps x {config.batch_size} x {config.context} "
        f"bytes, {f'{workers} workers' if engine == 'local' else 'on Ray'})")
    started = time.time()
    progress = ProgressFile(out_dir, "mix-run", unit="proxies", total=len(mine)).start()
    progress.update(done=done_before, phase="training proxies", force=True)
    trained = 0
    curve = FitCurve(plan_dir, names) if part is None else None  # a shard's table is a part: no fit of its own
    try:
        if engine == "ray":
            from mixopt.ray_proxies import ray_results

            results = ray_results(plan_dir, plan, todo, config, ray_address, gpus_per_proxy, log)
        else:
            results = _local_results(plan_dir, plan, todo, config, workers)
        for trained, result in enumerate(results, 1):
            done.append({**result, "finished_at": round(time.time(), 3)})
            write_results(out_dir, done, names, metadata)
            elapsed = time.time() - started
            summary = (f"mean bpb {np.mean([v for k, v in result.items() if k.startswith('bpb.')]):.3f}"
                       if result["status"] == "ok" else f"FAILED: {result['error']}")
            log(f"[{trained}/{len(todo)}] {result['run_id']} {summary}  ({elapsed:.0f}s, "
                f"eta {elapsed / trained * (len(todo) - trained):.0f}s)")
            sys.stdout.flush()
            progress.update(done=done_before + trained, failed=sum(r["status"] != "ok" for r in done))
            if curve:
                _log_point(curve.add(len(done)), log)
        if curve:
            _log_point(curve.add(len(done), final=True), log)
    except KeyboardInterrupt:
        progress.finish("interrupted", "interrupted by a signal")
        raise
    except BaseException as exc:
        progress.finish("failed", f"{type(exc).__name__}: {exc}")
        raise
    left = len(mine) - done_before - trained
    progress.finish("complete" if left == 0 else "interrupted",
                    None if left == 0 else f"{left} proxies left to train; re-run the same command")
    return done


def _log_point(point: dict | None, log) -> None:
    if point:
        log(f"quick fit of {point['runs']} proxies: cross-validated rank correlation LightGBM "
            f"{point['lightgbm']:+.3f}, linear {point['linear']:+.3f}")


def _local_results(plan_dir: Path, plan: dict, todo: list[dict], config: ProxyConfig,
                   workers: int) -> Iterator[dict]:
    """Result rows as the local worker processes finish them."""
    if todo:
        preload()
    with process_pool(workers, _init_worker, (str(plan_dir),)) as pool:
        futures = {pool.submit(_run_one, m["run_id"], *run_settings(m, plan, config)): m for m in todo}
        for future in as_completed(futures):
            yield {**futures[future], **future.result()}
