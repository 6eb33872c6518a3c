"""SFT throughput: `wb train sft` against TRL's SFTTrainer on the same tiny model and the same data.

    python bench/sft_throughput.py [--rows 512] [--batch-size 8] [--max-length 512] [--threads 1]

Bundled GSM8K rows become SFT messages (user question, assistant answer); every configuration trains one
epoch over the same rows from the same saved random model, with assistant-only loss, the same optimiser
(AdamW, constant lr, clipping 1.0) and batch size, each in its own subprocess so peak memory is its own.
Configurations: ours padding-free (default) and packed; TRL's default (padded, gradient checkpointing on,
as TRL ships it) and TRL with packing (bfd, padding-free). It prints trained (assistant) tokens per
second of training time, peak memory (CUDA allocator on a GPU, else peak RSS), the ratio to TRL's
default, the last step's training loss, and the held-out loss of every saved model scored by one
shared function. Needs the bench extra: pip install -e ".[bench]".
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = {
    "wb padding-free": ("ours", "padding_free"),
    "wb padded": ("ours", "padded"),
    "wb packed": ("ours", "packed"),
    "TRL default": ("trl", "default"),
    "TRL packing": ("trl", "packing"),
}


def prepare(workdir: Path, rows: int, eval_rows: int) -> None:
    """Save the tiny model and write train/eval SFT messages from bundled GSM8K."""
    from demo.tiny_models import save_tiny_model
    from workbench.workspace import bundled_data_dir

    save_tiny_model(workdir / "model", "llama", seed=0)
    lines = (bundled_data_dir() / "gsm8k" / "train.jsonl").read_text().splitlines()[: rows + eval_rows]
    records = [json.loads(line) for line in lines]
    msgs = [{"messages": [{"role": "user", "content": r["question"]}, {"role": "assistant", "content": r["answer"]}]}
            for r in records]
    (workdir / "train.jsonl").write_text("".join(json.dumps(m) + "\n" for m in msgs[:rows]))
    (workdir / "eval.jsonl").write_text("".join(json.dumps(m) + "\n" for m in msgs[rows:]))


def peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(workdir: Path, layout: str, args) -> dict:
    from trainers.loop import read_metrics
    from trainers.sft import SFTConfig, train_sft

    out = workdir / f"wb-{layout}"
    cfg = SFTConfig(model=str(workdir / "model"), data=str(workdir / "train.jsonl"), output=str(out),
                    layout=layout, batch_size=args.batch_size, max_length=args.max_length, lr=args.lr,
                    schedule="constant", epochs=1, eval_fraction=0, save_every=0, log_every=10**9,
                    seed=0, dtype="bf16" if args.bf16 else "fp32")
    train_sft(cfg, log=lambda *_: None)
    metrics = read_metrics(out)
    return {"seconds": sum(m["step_seconds"] for m in metrics), "trained_tokens": metrics[-1]["trained_tokens_total"],
            "steps": len(metrics), "final_loss": metrics[-1]["loss"], "model": str(out / "model")}


def run_trl(workdir: Path, variant: str, args) -> dict:
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    out = workdir / f"trl-{variant}"
    tokenizer = AutoTokenizer.from_pretrained(workdir / "model")
    model = AutoModelForCausalLM.from_pretrained(workdir / "model")
    data = load_dataset("json", data_files=str(workdir / "train.jsonl"), split="train")
    cfg = SFTConfig(output_dir=str(out), per_device_train_batch_size=args.batch_size, num_train_epochs=1,
                    learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
                    max_grad_norm=1.0, max_length=args.max_length, assistant_only_loss=True, logging_steps=1,
                    save_strategy="no", report_to="none", seed=0, bf16=args.bf16, use_cpu=not _cuda(),
                    packing=variant == "packing", dataloader_num_workers=0, disable_tqdm=True)

    class Clock(TrainerCallback):
        seconds = 0.0

        def on_step_begin(self, *a, **k):
            self.t0 = time.perf_counter()

        def on_step_end(self, *a, **k):
            Clock.seconds += time.perf_counter() - self.t0

    trainer = SFTTrainer(model=model, args=cfg, train_dataset=data, processing_class=tokenizer, callbacks=[Clock()])
    # trained tokens = labels kept in the loss (assistant tokens), counted over the prepared dataset
    trained = sum(sum(t != -100 for t in labels) for labels in trainer.train_dataset["labels"])
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    trainer.save_model(str(out / "model"))
    return {"seconds": Clock.seconds, "trained_tokens": trained, "steps": trainer.state.global_step,
            "final_loss": losses[-1], "model": str(out / "model")}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def worker(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    kind, variant = CONFIGS[args.worker]
    result = (run_ours if kind == "ours" else run_trl)(Path(args.workdir), variant, args)
    result["peak_mb"] = peak_memory_mb()
    print("RESULT " + json.dumps(result))


def held_out_loss(model_dir: str, eval_path: Path, max_length: int) -> float:
    """Mean NLL per assistant token on the eval rows, the same scorer for every model."""
    from trainers.client import ClientConfig, TrainingClient
    from trainers.records import load_rendered
    from trainers.sft import nll_eval, render_fn

    client = TrainingClient.load(ClientConfig(model=model_dir))
    examples = load_rendered(str(eval_path), "sft", render_fn(client.tokenizer, max_length)).items
    return nll_eval(client, examples, 8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=512, help="training rows (one epoch)")
    parser.add_argument("--eval-rows", type=int, default=64, help="held-out rows for the shared eval loss")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for every configuration")
    parser.add_argument("--bf16", action="store_true", help="bf16 weights (GPU)")
    parser.add_argument("--only", nargs="+", choices=list(CONFIGS), help="run only these configurations")
    parser.add_argument("--worker", choices=list(CONFIGS), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="sft-bench-") as tmp:
        workdir = Path(tmp)
        prepare(workdir, args.rows, args.eval_rows)
        results = {}
        for name in args.only or CONFIGS:
            cmd = [sys.executable, __file__, "--worker", name, "--workdir", str(workdir), "--rows", str(args.rows),
                   "--batch-size", str(args.batch_size), "--max-length", str(args.max_length), "--lr", str(args.lr),
                   "--threads", str(args.threads)] + (["--bf16"] if args.bf16 else [])
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line is None:
                print(f"{name}: failed\n{proc.stderr[-3000:]}", file=sys.stderr)
                continue
            results[name] = json.loads(line[7:])
            results[name]["eval_loss"] = held_out_loss(results[name]["model"], workdir / "eval.jsonl", args.max_length)
        base = results.get("TRL default", {})
        device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {args.threads} thread(s)"
        print(f"\nSFT throughput: tiny llama, {args.rows} GSM8K rows x 1 epoch, batch {args.batch_size}, "
              f"max_length {args.max_length}, {device}")
        print("| config | steps | trained tok/s | vs TRL default | peak MB | last-step loss | held-out loss |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, r in results.items():
            tps = r["trained_tokens"] / r["seconds"]
            ratio = tps / (base["trained_tokens"] / base["seconds"]) if base else float("nan")
            print(f"| {name} | {r['steps']} | {tps:,.0f} | {ratio:.2f}x | {r['peak_mb']:,.0f} | {r['final_loss']:.4f} "
                  f"| {r['eval_loss']:.4f} |")


if __name__ == "__main__":
    main()
