"""The cost of going through `wb tinker serve`: the same LoRA training steps via the Tinker SDK over HTTP
and in process with the training core (`trainers.client.TrainingClient`), side by side.

    python bench/tinker_overhead.py [--model DIR] [--batch 8] [--steps 10] [--threads 1]

Both sides train a rank-8 LoRA on the same batch of bundled GSM8K conversations (every token trained,
summed cross-entropy) with forward_backward + optim_step per step. The service runs as a subprocess on
127.0.0.1 with the same torch thread count; the first step of each side is a warm-up. It prints seconds
per step, trained tokens/s and the service's step time as a ratio to the in-process core.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def conversations(tokenizer, n: int, max_len: int) -> list[list[int]]:
    from workbench.workspace import bundled_data_dir

    out = []
    with open(bundled_data_dir() / "gsm8k" / "train.jsonl") as f:
        for line in f:
            row = json.loads(line)
            ids = tokenizer.apply_chat_template([{"role": "user", "content": row["question"]},
                                                 {"role": "assistant", "content": row["answer"]}],
                                                tokenize=True, return_dict=False)
            if len(ids) <= max_len:
                out.append(list(ids))
            if len(out) == n:
                return out
    return out


def core_steps(model: str, seqs: list[list[int]], steps: int) -> list[float]:
    import torch

    from trainers.client import ClientConfig, TrainingClient

    client = TrainingClient.load(ClientConfig(model=model, lora_r=8, lr=1e-3, schedule="constant", max_grad_norm=0))
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), client.tokenizer.pad_token_id)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, 1:len(s)] = 1
    lengths = torch.tensor([len(s) for s in seqs])
    batch = {"input_ids": ids, "attention_mask": (torch.arange(width)[None] < lengths[:, None]).long(),
             "position_ids": torch.arange(width)[None].expand_as(ids), "loss_mask": mask}
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        client.forward_backward(batch, lambda logps, b: (-logps.sum(), {}))
        client.optim_step()
        times.append(time.perf_counter() - t0)
    return times[1:]


def service_steps(model: str, seqs: list[list[int]], steps: int, threads: int, work: Path) -> list[float]:
    import tinker
    from tinker import types

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads), "TINKER_TELEMETRY": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "tinker", "serve", "--base-model", model,
                             "--port", str(port), "--output", str(work / "run"), "--api-key", "tml-bench"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.2)
        sc = tinker.ServiceClient(base_url=f"http://127.0.0.1:{port}", api_key="tml-bench")
        tc = sc.create_lora_training_client(base_model=model, rank=8, seed=0).result()
        data = [types.Datum(model_input=types.ModelInput.from_ints(s[:-1]),
                            loss_fn_inputs={"target_tokens": s[1:], "weights": [1.0] * (len(s) - 1)}) for s in seqs]
        times = []
        for _ in range(steps + 1):
            t0 = time.perf_counter()
            fb = tc.forward_backward(data, "cross_entropy")
            opt = tc.optim_step(types.AdamParams(learning_rate=1e-3))
            fb.result()
            opt.result()
            times.append(time.perf_counter() - t0)
        sc.close("success").result()
        return times[1:]
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model directory (default: a saved tiny random Llama)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-len", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch
    from transformers import AutoTokenizer

    from demo.tiny_models import save_tiny_model

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="tinker-bench-"))
    model = args.model or str(save_tiny_model(work / "tiny", "llama"))
    seqs = conversations(AutoTokenizer.from_pretrained(model), args.batch, args.max_len)
    tokens = sum(len(s) - 1 for s in seqs)
    core = core_steps(model, seqs, args.steps)
    service = service_steps(model, seqs, args.steps, args.threads, work)
    base = sum(core) / len(core)
    print(f"{len(seqs)} sequences, {tokens} trained tokens per step, {args.steps} steps, {args.threads} thread(s)")
    print(f"{'side':<34} {'s/step':>8} {'tokens/s':>10} {'ratio':>7}")
    for name, times in (("in-process core (TrainingClient)", core), ("wb tinker serve via the SDK", service)):
        mean = sum(times) / len(times)
        print(f"{name:<34} {mean:>8.3f} {tokens / mean:>10.0f} {mean / base:>7.2f}")


if __name__ == "__main__":
    main()
