"""`wb serve` throughput against one batched `model.generate`, and a short request behind a long one.

    python bench/serve_throughput.py                        # the tiny random llama (built on the fly)
    python bench/serve_throughput.py --model /tmp/smollm2   # a real model directory

Each repeat times (a) one left-padded greedy `model.generate` of the C prompts in this process and (b) the
same C prompts sent at once as C concurrent requests to `wb serve` (a subprocess, `--max-batch` B),
and prints generated tokens per second of each and their ratio (goal: >= 0.9). Then a long request
(--long-tokens) and, --short-delay s later, a 4-token one: their latencies, which finished first, and the
4-token request's latency alone; the same behind one request with n = --wide-n (split by --max-batch). Both sides use --threads torch threads (OMP_NUM_THREADS); CPU timings
on a shared machine are noisy, so baseline and serve alternate and the median ratio is reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.serve_abandoned import free_port, wait_up  # noqa: E402

PROMPTS = ["Tell me about the sea.", "What is 17 times 3?", "Name three colours.", "Write a haiku about rain.",
           "Explain gravity to a child.", "List four fruits.", "Why is the sky blue?", "Describe a cat.",
           "How do plants grow?", "What is a prime number?", "Give me a recipe for tea.", "Who wrote Hamlet?",
           "Count from one to ten.", "What is the capital of France?", "Describe the moon.", "What is music?"]


def tiny_model(root: Path) -> Path:
    from demo.tiny_models import save_tiny_model, train_tokenizer

    path = root / "tiny-llama"
    if not (path / "config.json").exists():
        save_tiny_model(path, "llama", train_tokenizer(vocab_size=512))
    return path


def baseline(model, tokenizer, prompts: list[str], max_tokens: int) -> tuple[int, float]:
    """(generated tokens up to each sample's EOS, seconds) of one batched greedy `generate`."""
    import torch

    tokenizer.padding_side = "left"
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids = [tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                         tokenize=True, return_dict=False) for p in prompts]
    width = max(len(i) for i in ids)
    input_ids = torch.tensor([[pad] * (width - len(i)) + list(i) for i in ids])
    mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])
    eos = model.generation_config.eos_token_id
    eos = set(eos) if isinstance(eos, list) else {eos, tokenizer.eos_token_id}
    started = time.perf_counter()
    with torch.no_grad():
        out = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_tokens, do_sample=False,
                             pad_token_id=pad)
    seconds = time.perf_counter() - started
    tokens = 0
    for row in out[:, width:].tolist():
        cut = next((k + 1 for k, t in enumerate(row) if t in eos), len(row))
        tokens += cut
    return tokens, seconds


# One client with a warm connection pool, made before any timing: a client per request builds an SSL
# context and a connection each time, which on a loaded 2-core machine costs more than the tiny model's steps.
CLIENT = httpx.Client(timeout=600, limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))


def ask(url: str, name: str, prompt: str, max_tokens: int, n: int = 1) -> tuple[int, float]:
    """(completion tokens, seconds) of one chat request (greedy; sampled when n > 1)."""
    started = time.perf_counter()
    r = CLIENT.post(f"{url}/chat/completions", json={
        "model": name, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
        "temperature": 0 if n == 1 else 1.0, "n": n})
    r.raise_for_status()
    return r.json()["usage"]["completion_tokens"], time.perf_counter() - started


def concurrent(url: str, name: str, prompts: list[str], max_tokens: int) -> tuple[int, float]:
    """(completion tokens, seconds until the last answer) of the prompts sent at once."""
    results: list[tuple[int, float]] = [(0, 0.0)] * len(prompts)

    def one(i: int) -> None:
        results[i] = ask(url, name, prompts[i], max_tokens)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(prompts))]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(900)
    return sum(t for t, _ in results), time.perf_counter() - started


def short_behind_long(url: str, name: str, long_tokens: int, long_n: int = 1, delay: float = 0.3) -> dict:
    """Latencies of a long request (n = long_n) and of a 4-token one sent `delay` s after it; which ended first."""
    done: list[str] = []
    lat: dict[str, float] = {}

    def run(tag: str, max_tokens: int, delay: float, n: int) -> None:
        time.sleep(delay)
        lat[f"{tag}_tokens"], lat[tag] = ask(url, name, "Write a long story about a dragon.", max_tokens, n)
        done.append(tag)

    threads = [threading.Thread(target=run, args=("long", long_tokens, 0.0, long_n)),
               threading.Thread(target=run, args=("short", 4, delay, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(900)
    lat["first"] = done[0] if done else "none"
    return lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a transformers model directory (default: the tiny random llama)")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--long-tokens", type=int, default=256)
    ap.add_argument("--wide-n", type=int, default=64, help="n of the wide request a 4-token one follows")
    ap.add_argument("--short-delay", type=float, default=0.3, help="seconds between the long and the short request")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads on each side")
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="wb-bench-serve-"))
    model_dir = Path(args.model) if args.model else tiny_model(root)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prompts = (PROMPTS * ((args.concurrency + len(PROMPTS) - 1) // len(PROMPTS)))[:args.concurrency]

    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    server = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", str(model_dir), "--port", str(port),
                               "--max-batch", str(args.max_batch)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        name = wait_up(url)
        concurrent(url, name, prompts, 4)  # warm up both sides (and open the connections)
        baseline(model, tokenizer, prompts[:2], 4)
        print(f"model {model_dir.name}, {args.concurrency} prompts x {args.max_tokens} tokens (greedy), "
              f"--max-batch {args.max_batch}, {args.threads} thread(s)")
        print(f"{'repeat':>6} | {'generate tok':>12} {'tok/s':>7} | {'serve tok':>9} {'tok/s':>7} | ratio")
        ratios = []
        for k in range(args.repeats):
            bt, bs = baseline(model, tokenizer, prompts, args.max_tokens)
            st, ss = concurrent(url, name, prompts, args.max_tokens)
            ratios.append((st / ss) / (bt / bs))
            print(f"{k:>6} | {bt:>12} {bt / bs:>7.1f} | {st:>9} {st / ss:>7.1f} | {ratios[-1]:.2f}")
        print(f"median ratio serve / generate: {statistics.median(ratios):.2f}")
        _, alone = ask(url, name, "Write a long story about a dragon.", 4)
        lat = short_behind_long(url, name, args.long_tokens, 1, args.short_delay)
        print(f"short (4 tokens) behind long ({lat.get('long_tokens')} tokens, started {args.short_delay} s earlier): "
              f"short {lat.get('short', 0):.2f} s, long {lat.get('long', 0):.2f} s, first done: {lat['first']}; "
              f"short alone {alone:.2f} s")
        wide = short_behind_long(url, name, args.max_tokens, args.wide_n, args.short_delay)
        print(f"short (4 tokens) behind n={args.wide_n} x {args.max_tokens} tokens ({wide.get('long_tokens')} "
              f"generated): short {wide.get('short', 0):.2f} s, wide {wide.get('long', 0):.2f} s, "
              f"first done: {wide['first']}")
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
