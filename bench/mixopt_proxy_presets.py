"""Proxies per hour per `--model-size` preset on this machine, at each preset's token budget.

For every preset, `train_proxy` (the sweep's own loop) runs twice on a small sample of steps; the
difference gives the seconds per step, the rest the fixed cost (building the model, evaluating one held-out
set). A whole proxy is then extrapolated to the preset's budget (`mixopt.proxy.TOKEN_BUDGETS`). The
baseline, run in the same session: one whole `tiny` proxy trained end to end, so the table shows how far
the extrapolation is from a measured proxy, and every preset's rate as a ratio to `tiny`'s.

    python bench/mixopt_proxy_presets.py                                  # CPU, 1 thread per proxy
    python bench/mixopt_proxy_presets.py --device cuda --context 512 --batch-size 64 --presets gpu-20m olmix-15m olmix-60m
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import numpy as np

from mixopt.proxy import MODEL_SIZES, TOKEN_BUDGETS, ProxyConfig, non_embedding_parameters, train_proxy


def timed(arrays: dict, config: ProxyConfig) -> float:
    started = time.perf_counter()
    result = train_proxy(arrays, {"a": 1.0}, {"a": arrays["a"]}, config)
    assert result["status"] == "ok", result
    return time.perf_counter() - started


def measure(preset: str, arrays: dict, base: ProxyConfig, steps: tuple[int, int]) -> dict:
    """Seconds per step and fixed seconds of one preset, from two short runs of `steps` steps.

    Small presets: the difference of the two runs gives the step time (their fixed cost, building the
    model and evaluating, is most of a short run). Large presets evaluate only 1k tokens and take the longer
    run's time over its steps, an upper bound (a difference of two noisy, slow runs can even go negative)."""
    per_run = base.batch_size * base.context
    large = non_embedding_parameters(preset) >= 2_000_000
    config = replace(base, model_size=preset, eval_tokens=1_024 if large else base.eval_tokens)
    short, long = (timed(arrays, replace(config, tokens_per_run=k * per_run)) for k in steps)
    per_step = long / steps[1] if large else max(1e-9, (long - short) / (steps[1] - steps[0]))
    fixed = 0.0 if large else max(0.0, short - steps[0] * per_step)
    budget = TOKEN_BUDGETS[preset]
    seconds = fixed + budget / per_run * per_step
    return {"preset": preset, "params": non_embedding_parameters(preset), "budget": budget,
            "tokens_per_s": per_run / per_step, "seconds": seconds, "per_hour": 3600 / seconds,
            "sampled_tokens": (steps[0] + steps[1]) * per_run}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(MODEL_SIZES), choices=list(MODEL_SIZES))
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=2, help="proxies trained at once on this machine")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    arrays = {"a": rng.integers(0, 256, 2_000_000).astype(np.uint8)}
    base = ProxyConfig(context=args.context, batch_size=args.batch_size, threads=args.threads, device=args.device,
                       eval_tokens=32_768)
    tiny_whole = timed(arrays, replace(base, tokens_per_run=TOKEN_BUDGETS["tiny"]))
    load = os.getloadavg()[0]
    rows = []
    for preset in args.presets:
        small = non_embedding_parameters(preset) < 2_000_000
        rows.append(measure(preset, arrays, base, (4, 12) if small else (1, 4)))
        print(f"measured {preset}", flush=True)
    tiny = next((r for r in rows if r["preset"] == "tiny"), None)
    print(f"\nproxies per hour, {args.device}, {args.threads} thread(s) per proxy, context {args.context} x batch "
          f"{args.batch_size}, load average {load:.1f} on {os.cpu_count()} cores at the start; 'x workers' assumes "
          f"{args.workers} proxies in parallel scale linearly\n")
    print(f"| preset | non-emb params | tokens/proxy | train tokens/s | s/proxy | proxies/h | x{args.workers} workers "
          f"| vs tiny | how |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        how = f"extrapolated from {r['sampled_tokens']:,} tokens"
        ratio = f"{r['per_hour'] / tiny['per_hour']:.2g}" if tiny else "-"
        print(f"| {r['preset']} | {r['params'] / 1e6:.2f}M | {r['budget']:.3g} | {r['tokens_per_s']:,.0f} | "
              f"{r['seconds']:,.0f} | {r['per_hour']:.3g} | {r['per_hour'] * args.workers:.3g} | {ratio} | {how} |")
    print(f"| tiny (baseline) | {non_embedding_parameters('tiny') / 1e6:.2f}M | {TOKEN_BUDGETS['tiny']:.3g} | "
          f"{TOKEN_BUDGETS['tiny'] / tiny_whole:,.0f} | {tiny_whole:,.0f} | {3600 / tiny_whole:.3g} | "
          f"{3600 / tiny_whole * args.workers:.3g} | 1 | measured whole |")
    if tiny:
        print(f"\nextrapolation vs the measured whole tiny proxy: {tiny['seconds'] / tiny_whole:.2f}x")


if __name__ == "__main__":
    main()
