"""Asynchronous GRPO: synchronous vs staleness 1 and 2 with a separate generator, side by side.

    python bench/grpo_async.py [--model DIR] [--steps 30] [--max-new-tokens 32] [--seeds 0]

A toy verifiable task (16 prompts; reward = share of completion token ids divisible by 4, checked
exactly; chance is about 1/4) trained from the same tiny random Llama with `wb train grpo`:
- in-process: the policy samples itself (today's default, for reference);
- generator K=0: `wb serve --allow-weight-updates` in another process, synchronous;
- generator K=1 and K=2: generation of the next K steps overlaps training of this one.
Trainer and server each get one torch thread. Prints per configuration the mean wall seconds per step
(first step skipped), its ratio to generator K=0, the reward averaged over the first and last five steps,
the reward curve by training step and by the policy version that sampled it (with staleness K the
samples trained at step s come from version s - K, so the step curve lags by K), and the mean
generator-vs-trainer gap and staleness. Other jobs on the machine move
the timings: read the ratio, measured in one run, not the absolute seconds; with several seeds the
configurations run in alternating order so a change of load hits all of them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REWARD = '''
def divisible(completion_ids, modulus, **_):
    """Share of completion token ids that are multiples of the row's modulus (verifiable, exact)."""
    return [sum(t % m == 0 for t in ids) / len(ids) for ids, m in zip(completion_ids, modulus)]
'''
CONFIGS = {"in-process": None, "generator K=0": 0, "generator K=1": 1, "generator K=2": 2}
BURN = "import time, torch\ntorch.set_num_threads(1)\nx = torch.randn(256, 256)\nt = time.perf_counter()\n" \
       "for _ in range(1500):\n    x @ x\nprint(time.perf_counter() - t)"


def spare_core_check() -> float:
    """Wall time of two one-thread matmul processes run together / one run alone: about 1 when a second
    core is free (the generator can overlap the trainer), about 2 when the machine is saturated."""
    import subprocess

    def run(n: int) -> float:
        procs = [subprocess.Popen([sys.executable, "-c", BURN], stdout=subprocess.PIPE, text=True) for _ in range(n)]
        return max(float(p.communicate()[0]) for p in procs)

    return run(2) / run(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model directory with a chat template (default: a saved tiny random Llama)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()

    import numpy as np
    import torch

    from demo.tiny_models import save_tiny_model
    from trainers.generator import local_generator
    from trainers.grpo import GRPOConfig, train_grpo
    from trainers.loop import read_metrics

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="grpo-async-bench-"))
    model = args.model or str(save_tiny_model(work / "tiny", "llama"))
    (work / "bench_rewards.py").write_text(REWARD)
    sys.path.insert(0, str(work))
    prompts = work / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Count {i} apples", "modulus": 4}) + "\n" for i in range(16)))

    results: dict[str, list[list[dict]]] = {name: [] for name in CONFIGS}
    with local_generator(model, work, threads=1) as url:
        for i, seed in enumerate(args.seeds):  # alternate the order so a load change on the machine hits all
            for name, k in (list(CONFIGS.items()) if i % 2 == 0 else list(CONFIGS.items())[::-1]):
                out = work / f"{name.replace(' ', '_')}-{seed}"
                cfg = GRPOConfig(model=model, prompts=str(prompts), output=str(out), reward=["bench_rewards:divisible"],
                                 max_steps=args.steps, lr=1e-2, schedule="constant", num_generations=8,
                                 prompts_per_step=4, max_new_tokens=args.max_new_tokens, batch_size=32,
                                 save_every=0, max_length=256, seed=seed, generator=None if k is None else url,
                                 max_staleness=k or 0, rollout_correction="none" if k is None else "tis")
                train_grpo(cfg, log=lambda *_: None)
                results[name].append(read_metrics(out))
                print(f"  {name} seed {seed}: done", file=sys.stderr)

    base = np.mean([m["step_seconds"] for run in results["generator K=0"] for m in run[1:]])
    sync = [m for run in results["generator K=0"] for m in run[1:]]
    gen, rest = np.mean([m["time/generation_wait"] for m in sync]), np.mean([m["step_seconds"] - m["time/generation_wait"]
                                                                             for m in sync])
    print(f"\n{args.steps} steps x 4 prompts x G=8, up to {args.max_new_tokens} new tokens, seeds {args.seeds}; "
          f"trainer and generator one torch thread each. Spare-core check: two one-thread processes take "
          f"{spare_core_check():.2f}x the time of one (1 = a free core to overlap on, 2 = saturated). "
          f"Synchronous step = generation {gen:.3f} s + the rest {rest:.3f} s; with a free core the overlap "
          f"bound is {base / max(gen, rest):.2f}x\n")
    print("| config | s/step | vs K=0 | reward first 5 | reward last 5 | staleness | gen-vs-trainer abs logp diff |"
          " KL k3 | TIS-truncated share |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        step_s = np.mean([m["step_seconds"] for run in runs for m in run[1:]])
        first = np.mean([m["reward"] for run in runs for m in run[:5]])
        last = np.mean([m["reward"] for run in runs for m in run[-5:]])

        def avg(key, runs=runs):
            vals = [m[key] for run in runs for m in run if key in m]
            return f"{np.mean(vals):.3f}" if vals else "-"

        print(f"| {name} | {step_s:.3f} | {base / step_s:.2f}x | {first:.3f} | {last:.3f} | "
              f"{avg('async/staleness_mean')} | {avg('rollout/logprob_abs_diff')} | {avg('rollout/kl_k3')} | "
              f"{avg('rollout/corrected_share')} |")
    marks = sorted({1, *range(5, args.steps + 1, 5), args.steps})
    print("\nreward by training step (mean over seeds; a step with staleness K logs samples of version step - K)\n")
    print("| config | " + " | ".join(f"step {s}" for s in marks) + " |")
    print("|---|" + "---|" * len(marks))
    for name, runs in results.items():
        curve = [np.mean([run[s - 1]["reward"] for run in runs]) for s in marks]
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in curve) + " |")
    last_common = args.steps - 1 - max(k or 0 for k in CONFIGS.values())
    versions = sorted({0, *range(4, last_common + 1, 5), last_common})
    print("\nreward by the policy version that sampled it (the policy's quality after that many updates)\n")
    print("| config | " + " | ".join(f"v{v}" for v in versions) + " |")
    print("|---|" + "---|" * len(versions))
    for name, runs in results.items():
        by_version = [{m["step"] - 1 - m.get("async/staleness_max", 0): m["reward"] for m in run} for run in runs]
        curve = [np.mean([bv[v] for bv in by_version]) for v in versions]
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in curve) + " |")

if __name__ == "__main__":
    main()
