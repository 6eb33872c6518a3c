"""Proxy sweeps on Ray (`wb mix run PLAN --engine ray`): one Ray task per proxy, with its CPU and GPU share.

The driver puts the plan's byte arrays into the object store once (so worker nodes need no copy of the
plan folder), submits one task per mixture with `num_cpus=--threads` and `num_gpus=--gpus-per-proxy`, and
yields each result as it finishes; `sweep.py` appends it to `results.parquet` at once. A task whose worker
or node is lost is retried by Ray (`max_retries`); one that still fails is left out of the table and
named, so re-running the command trains it, and a killed driver costs only the proxies in flight. The
task runs the local engine's `train_run` with the same per-run seed, so the numbers equal the local ones.
Worker nodes need this project installed (or on PYTHONPATH), as for `wb curate --engine ray`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mixopt.plan import load_arrays
from mixopt.proxy import ProxyConfig
from mixopt.proxy_runs import run_settings, train_run
from workbench.errors import InputError

MAX_RETRIES = 2  # re-runs of a task whose worker process or node died


def check_resources(cluster: dict, config: ProxyConfig, gpus_per_proxy: float) -> None:
    """Raise `InputError` when no node could ever run one proxy (Ray would wait for it forever)."""
    if gpus_per_proxy > cluster.get("GPU", 0):
        raise InputError(f"--gpus-per-proxy {gpus_per_proxy:g}: the Ray cluster has {cluster.get('GPU', 0):g} GPUs")
    if config.threads > cluster.get("CPU", 0):
        raise InputError(f"--threads {config.threads}: the Ray cluster has {cluster.get('CPU', 0):g} CPUs")
    if config.device.startswith("cuda") and not gpus_per_proxy:
        raise InputError(f"--device {config.device} on Ray needs --gpus-per-proxy (Ray hides GPUs from tasks "
                         "that ask for none)")


def ray_results(plan_dir: Path, plan: dict, todo: list[dict], config: ProxyConfig,
                address: str | None, gpus_per_proxy: float, log) -> Iterator[dict]:
    """Result rows of the `todo` mixtures as their Ray tasks finish (see the module docstring)."""
    from workbench.ray_session import ray_session

    if not todo:
        return
    with ray_session(address) as ray:
        check_resources(ray.cluster_resources(), config, gpus_per_proxy)
        train, evals = load_arrays(plan_dir, plan)
        arrays = ray.put(({n: np.asarray(a) for n, a in train.items()}, {n: np.asarray(a) for n, a in evals.items()}))
        task = ray.remote(train_run).options(num_cpus=config.threads, num_gpus=gpus_per_proxy,
                                             max_retries=MAX_RETRIES)
        pending = {task.remote(arrays, m["run_id"], *run_settings(m, plan, config)): m for m in todo}
        lost = []
        while pending:  # bounded: every pass takes at least one task off
            ready, _ = ray.wait(list(pending), num_returns=1)
            mixture = pending.pop(ready[0])
            try:
                row = ray.get(ready[0])
            except ray.exceptions.RayError as exc:  # the worker or node died MAX_RETRIES + 1 times
                lost.append(mixture["run_id"])
                log(f"lost {mixture['run_id']} ({type(exc).__name__}); it stays untrained: re-run to train it")
                continue
            yield {**mixture, **row}
        if lost:
            log(f"{len(lost)} proxies lost to failed workers ({', '.join(lost[:5])}); re-run the same command")
