"""Reinforcement learning through the Tinker API, in the shape of tinker-cookbook's `rl_loop`.

Runs unchanged against Tinker or `wb tinker serve`; GSM8K questions from the bundled data:

    wb tinker serve --base-model MODEL_DIR --port 8000 --api-key tml-mykey &
    export TINKER_API_KEY=tml-mykey
    python examples/tinker/rl_loop.py --base-url http://127.0.0.1:8000 --model-name MODEL_DIR

Each step saves sampler weights, samples --group-size completions per question (stopping at the chat
template's end-of-turn token), scores them, centres the rewards within each group (advantage = reward
- group mean; groups with one reward everywhere carry no signal and are skipped), and trains with the
`importance_sampling` loss on the sampled tokens against the sampler's log-probs. Rewards: `math` (1
when the final answer after `####` or in \\boxed{} matches, via `llm.verify`'s math verifier) or `overlap`
(the share of completion tokens that occur in the question: a shaping reward, since answers reuse the
question's numbers, that gives an untrained model some signal).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    load_gsm8k,
    load_tokenizer,
    open_training_client,
    prompt_tokens,
    record,
    save_on_schedule,
)

SUFFIX = " Reason step by step, then give the final answer after ####."


def get_reward(kind: str, response: str, answer: str, completion: list[int] = (), prompt: list[int] = ()) -> float:
    if kind == "overlap":
        seen = set(prompt)
        return sum(t in seen for t in completion) / max(len(completion), 1)
    from llm.verify.math import check_math

    return float(bool(check_math(response, answer)[0]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-url", default=os.environ.get("TINKER_BASE_URL"), help="service URL (default: $TINKER_BASE_URL)")
    p.add_argument("--model-name", required=True, help="base model as the service names it")
    p.add_argument("--tokenizer", help="local tokenizer directory (default: --model-name)")
    p.add_argument("--log-path", default="/tmp/tinker-examples/rl-loop", help="metrics and checkpoint records")
    p.add_argument("--batch-size", type=int, default=16, help="questions per step")
    p.add_argument("--group-size", type=int, default=8, help="completions per question")
    p.add_argument("--learning-rate", type=float, default=4e-5)
    p.add_argument("--lora-rank", type=int, default=32)
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--save-every", type=int, default=20, help="save_state every N steps (0: never)")
    p.add_argument("--reward", choices=["math", "overlap"], default="math")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    import tinker
    from tinker import types

    args = parse_args(argv)
    log_path = Path(args.log_path)
    log_path.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(args.tokenizer or args.model_name)
    rows = load_gsm8k()
    n_batches = len(rows) // args.batch_size
    if args.max_steps is not None:
        n_batches = min(n_batches, args.max_steps)

    service = tinker.ServiceClient(base_url=args.base_url)
    training_client, start = open_training_client(service, args, log_path)
    params = types.SamplingParams(max_tokens=args.max_tokens, stop=[tokenizer.eos_token_id])
    adam = types.AdamParams(learning_rate=args.learning_rate, beta1=0.9, beta2=0.95, eps=1e-8)

    logged = []
    for step in range(start, n_batches):
        t0 = time.time()
        save_on_schedule(training_client, args, log_path, step, start)
        sampler_path = training_client.save_weights_for_sampler(name=f"{step:06d}").result().path
        sampler = service.create_sampling_client(model_path=sampler_path).result()
        batch = rows[step * args.batch_size:(step + 1) * args.batch_size]
        prompts = [prompt_tokens(tokenizer, [{"role": "user", "content": r["question"] + SUFFIX}]) for r in batch]
        # one request per question for its whole group (one generate call of group_size rows), all in flight
        futures = [sampler.sample(prompt=types.ModelInput.from_ints(p), num_samples=args.group_size,
                                  sampling_params=params) for p in prompts]
        datums, rewards, skipped = [], [], 0
        for prompt, future, row in zip(prompts, futures, batch, strict=True):
            sequences = future.result().sequences
            group_rewards = [get_reward(args.reward, tokenizer.decode(s.tokens, skip_special_tokens=True), row["answer"],
                                        s.tokens, prompt) for s in sequences]
            rewards += group_rewards
            mean = sum(group_rewards) / len(group_rewards)
            if all(r == mean for r in group_rewards):
                skipped += 1
                continue
            for s, r in zip(sequences, group_rewards, strict=True):
                tokens, ob = prompt + s.tokens, len(prompt) - 1
                datums.append(types.Datum(model_input=types.ModelInput.from_ints(tokens[:-1]), loss_fn_inputs={
                    "target_tokens": tokens[1:],
                    "logprobs": [0.0] * ob + list(s.logprobs),
                    "advantages": [0.0] * ob + [r - mean] * len(s.tokens)}))
        if datums:
            fwd_bwd = training_client.forward_backward(datums, loss_fn="importance_sampling")
            optim = training_client.optim_step(adam)
            fwd_bwd.result()
            optim.result()
        row = {"step": step, "reward": sum(rewards) / len(rewards), "datums": len(datums), "skipped_groups": skipped,
               "seconds": time.time() - t0}
        record(log_path, "metrics.jsonl", row)
        logged.append(row)
        print(f"step {step}: reward {row['reward']:.4f}, {len(datums)} datums, {skipped} groups skipped "
              f"({row['seconds']:.2f}s)", flush=True)
    path = training_client.save_state("final", overwrite=True).result().path
    record(log_path, "checkpoints.jsonl", {"name": "final", "state_path": path, "batch": n_batches})
    print(f"done; final state {path}")
    return logged


if __name__ == "__main__":
    main()
