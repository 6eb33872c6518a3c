"""GRPO step-time breakdown: generation, log-prob recomputation and training, per configuration.

    python bench/grpo_step_time.py [--model DIR] [--steps 6] [--max-new-tokens 64] [--threads 1]

Runs `wb train grpo` on bundled GSM8K prompts (math + format + overlong rewards) from the same model
(default: a saved tiny random Llama) in three configurations side by side: the baseline (one pass,
no reference: the trainer's log-probs are the old ones, nothing is recomputed), two passes per
generation batch (old log-probs recomputed once), and beta > 0 (reference log-probs too). It prints
the mean seconds per step of each phase (the first step is skipped as warm-up), generation and
training tokens/s, and each configuration's step time as a ratio to the baseline.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = {
    "1 pass, beta 0 (baseline)": {},
    "2 passes (old logps)": {"num_iterations": 2},
    "1 pass, beta 0.04 (ref logps)": {"beta": 0.04},
}
PHASES = ("time/generation", "time/rewards", "time/logprobs", "time/training")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model directory (default: a saved tiny random Llama)")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import numpy as np
    import torch

    from demo.tiny_models import save_tiny_model
    from trainers.grpo import GRPOConfig, train_grpo
    from trainers.loop import read_metrics
    from workbench.workspace import bundled_data_dir

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="grpo-bench-"))
    model = args.model or str(save_tiny_model(work / "tiny", "llama"))
    rows = []
    for name, extra in CONFIGS.items():
        cfg = GRPOConfig(model=model, prompts=str(bundled_data_dir() / "gsm8k" / "test.jsonl"), prompt_field="question",
                         output=str(work / name.split()[0] / str(len(rows))), reward=["math", "format:0.5", "overlong:0.1"],
                         max_steps=args.steps, lr=1e-5, num_generations=8, prompts_per_step=4, batch_size=16,
                         max_new_tokens=args.max_new_tokens, overlong_buffer=args.max_new_tokens // 4, max_length=512,
                         save_every=0, log_every=10**9, **extra)
        train_grpo(cfg, log=lambda *_: None)
        metrics = read_metrics(cfg.output)[1:]
        phase = {p: float(np.mean([m[p] for m in metrics])) for p in PHASES}
        rows.append((name, phase, float(np.mean([m["step_seconds"] for m in metrics])),
                     float(np.mean([m["gen_tokens_per_s"] for m in metrics])),
                     float(np.mean([m["train_tokens_per_s"] for m in metrics]))))
    base = rows[0][2]
    print(f"model {model}, {args.steps - 1} timed steps, 4 prompts x G=8, max_new_tokens {args.max_new_tokens}, "
          f"{args.threads} thread(s), {'cuda' if torch.cuda.is_available() else 'cpu'}")
    print("| config | generation s | rewards s | logprob recompute s | training s | step s | gen tok/s | "
          "train tok/s | step vs baseline |\n|---|---|---|---|---|---|---|---|---|")
    for name, phase, step, gen, train in rows:
        print(f"| {name} | {phase['time/generation']:.3f} | {phase['time/rewards']:.3f} | "
              f"{phase['time/logprobs']:.3f} | {phase['time/training']:.3f} | {step:.3f} | {gen:.0f} | {train:.0f} | "
              f"{step / base:.2f}x |")


if __name__ == "__main__":
    main()
