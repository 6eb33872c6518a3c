"""Supervised fine-tuning through the Tinker API, in the shape of tinker-cookbook's `sl_loop`.

Runs unchanged against Tinker or `wb tinker serve`; here on bundled GSM8K question/answer pairs:

    wb tinker serve --base-model MODEL_DIR --port 8000 --api-key tml-mykey &
    export TINKER_API_KEY=tml-mykey
    python examples/tinker/sl_loop.py --base-url http://127.0.0.1:8000 --model-name MODEL_DIR

Each step renders a batch of conversations, trains on the assistant tokens (`cross_entropy`, weights 0
on the prompt), takes an Adam step with a linearly decaying learning rate, and logs the train NLL per
token to LOG_PATH/metrics.jsonl. `save_state` runs every --save-every steps; re-running the same
command resumes from the last one (weights and optimiser state).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    conversation_tokens,
    load_gsm8k,
    load_tokenizer,
    open_training_client,
    record,
    save_on_schedule,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-url", default=os.environ.get("TINKER_BASE_URL"), help="service URL (default: $TINKER_BASE_URL)")
    p.add_argument("--model-name", required=True, help="base model as the service names it")
    p.add_argument("--tokenizer", help="local tokenizer directory (default: --model-name)")
    p.add_argument("--log-path", default="/tmp/tinker-examples/sl-loop", help="metrics and checkpoint records")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--lora-rank", type=int, default=32)
    p.add_argument("--max-length", type=int, default=512, help="drop conversations longer than this")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (default: one epoch)")
    p.add_argument("--save-every", type=int, default=20, help="save_state every N steps (0: never)")
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

    logged = []
    for step in range(start, n_batches):
        t0 = time.time()
        save_on_schedule(training_client, args, log_path, step, start)
        lr = args.learning_rate * (1 - step / n_batches)  # linear decay to zero over the run
        batch = []
        for row in rows[step * args.batch_size:(step + 1) * args.batch_size]:
            messages = [{"role": "user", "content": row["question"]}, {"role": "assistant", "content": row["answer"]}]
            tokens, weights = conversation_tokens(tokenizer, messages)
            if len(tokens) > args.max_length:
                continue
            batch.append(types.Datum(model_input=types.ModelInput.from_ints(tokens[:-1]),
                                     loss_fn_inputs={"target_tokens": tokens[1:], "weights": weights[1:]}))
        if not batch:
            print(f"step {step}: every conversation is longer than --max-length {args.max_length}; skipped")
            continue
        fwd_bwd = training_client.forward_backward(batch, "cross_entropy")
        optim = training_client.optim_step(types.AdamParams(learning_rate=lr))
        result = fwd_bwd.result()
        optim.result()
        weight_sum = sum(sum(d.loss_fn_inputs["weights"].tolist()) for d in batch)
        nll = result.metrics["loss:sum"] / max(weight_sum, 1.0)
        row = {"step": step, "train_nll": nll, "learning_rate": lr, "datums": len(batch), "seconds": time.time() - t0}
        record(log_path, "metrics.jsonl", row)
        logged.append(row)
        print(f"step {step}: nll {nll:.4f} lr {lr:.2e} ({len(batch)} datums, {row['seconds']:.2f}s)", flush=True)
    path = training_client.save_state("final", overwrite=True).result().path
    record(log_path, "checkpoints.jsonl", {"name": "final", "state_path": path, "batch": n_batches})
    print(f"done; final state {path}")
    return logged


if __name__ == "__main__":
    main()
