"""One planned proxy run, the same under every engine (local processes, Ray tasks, shards): the weights and
seed it trains with, the row it yields, and the settings that make two runs comparable.

    weights, config = run_settings(mixture_row, plan, ProxyConfig())
    row = train_run((train_arrays, eval_arrays), mixture_row["run_id"], weights, config)
"""

from __future__ import annotations

from dataclasses import replace

from mixopt.plan import domain_names, expand_weights
from mixopt.proxy import ProxyConfig, train_proxy
from mixopt.results import weight_column
from workbench.config import as_plain


def train_run(arrays: tuple[dict, dict], run_id: str, weights: dict[str, float], config: ProxyConfig) -> dict:
    """One proxy's result row (metrics, or status "failed" with the error)."""
    train, evals = arrays
    try:
        metrics = train_proxy(train, weights, evals, config)
    except Exception as exc:  # a broken run is recorded, never lost or silently averaged
        metrics = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    return {"run_id": run_id, **metrics}


def run_settings(mixture: dict, plan: dict, config: ProxyConfig) -> tuple[dict[str, float], ProxyConfig]:
    """(weights over the real domains, config) a planned mixture trains with; the seed follows the run, not
    the order of training, so a resumed, sharded or Ray sweep equals a whole local one."""
    weights = expand_weights(plan, {n: mixture[weight_column(n)] for n in domain_names(plan)})
    return weights, replace(config, seed=config.seed + int(mixture["run_id"].rsplit("-", 1)[-1]))


def comparable(config: ProxyConfig) -> dict:
    """The settings that make two proxies comparable (threads and device do not change a run's result)."""
    return {k: v for k, v in as_plain(config).items() if k not in ("threads", "device")}
