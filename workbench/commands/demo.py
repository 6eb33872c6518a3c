"""`wb demo`: the post-training data loop on the bundled data, offline, in a few minutes on a CPU.

Each stage is the real `wb` command a user would type (printed before it runs), on small settings:
inspect GSM8K, curate it (decontaminate against GSM8K test and MATH-500, dedup), search a data mixture
with RegMix proxies, fine-tune a tiny model on the curated data (twice: a long and a short run), distil
answers from it with math verification, build delta-learning preference pairs (long run vs short run)
and train DPO on them.
The models are tiny and random, so the numbers show the plumbing, not quality.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import time
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.workspace import bundled_data_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="runs/demo", help="directory for the demo's runs (default: runs/demo)")
    parser.add_argument("--quick", action="store_true", help="smaller settings (used by the tests)")


def wb(*args: object) -> None:
    """Run one `wb` command in this process, printing it first; stop the demo if it fails."""
    from workbench.cli import main

    argv = [str(a) for a in args]
    print(f"\n$ wb {shlex.join(argv)}", flush=True)
    code = main(argv)
    if code:
        raise WorkbenchError(f"the demo stage `wb {argv[0]}` failed (exit {code}); see the message above")


MARKER = ".wb-demo"


def fresh_output(out: Path) -> None:
    """Start the demo from scratch each time, in a directory it owns: one it marked, or one holding only
    `wb` run directories (an earlier demo); any other non-empty folder is refused, never deleted."""
    only_runs = out.exists() and all(c.is_dir() and ((c / "manifest.json").exists() or (c / ".run-incomplete").exists())
                                     for c in out.iterdir())
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists() and not only_runs:
        raise WorkbenchError(f"{out}: exists and was not made by `wb demo`; choose an empty --output")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("made by wb demo; removed and rebuilt on every run\n")


def summary(out: Path) -> None:
    print(f"\n{'run':<28} {'stage':<14} {'rows in':>9} {'rows out':>9} {'seconds':>8}")
    for manifest in sorted(out.glob("*/manifest.json"), key=lambda p: p.stat().st_mtime):
        m = json.loads(manifest.read_text())
        rows_in = "" if m.get("rows_in") is None else f"{m['rows_in']:,}"
        rows_out = "" if m.get("rows_out") is None else f"{m['rows_out']:,}"
        print(f"{manifest.parent.name:<28} {m['stage']:<14} {rows_in:>9} {rows_out:>9} {m['wall_seconds']:>8.1f}")


def run(args: argparse.Namespace) -> int:
    import torch
    from transformers.utils import logging as hf_logging

    from workbench.fixtures import tiny_model_path

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    torch.set_num_threads(1)  # tiny models run fastest on one thread; two fight over a 2-core machine
    started = time.time()
    out = Path(args.output)
    fresh_output(out)
    data = bundled_data_dir()
    quick = args.quick
    gsm8k_train, gsm8k_test = data / "gsm8k" / "train.jsonl", data / "gsm8k" / "test.jsonl"

    print("== 1. look at the data")
    wb("inspect", gsm8k_test)

    print("\n== 2. curate: length filter, decontaminate against GSM8K test + MATH-500, exact and near dedup")
    wb("curate", gsm8k_train, "--output", out / "curated", "--filters", "length",
       "--benchmark", "gsm8k", "math500", "--pii", "redact")

    print("\n== 3. choose a data mixture: RegMix proxies on three domains, target MATH-500 solutions")
    runs, tokens = (6, 20_000) if quick else (12, 60_000)
    wb("mix", "plan", data.parent / "mixopt" / "domains.yaml", "--output", out / "mix-plan", "--runs", runs,
       "--tokens-per-run", tokens)
    wb("mix", "run", out / "mix-plan", "--tokens-per-run", tokens, "--workers", 2)
    wb("mix", "fit", out / "mix-plan" / "results.parquet", "--output", out / "mix-fit", "--folds", 4)
    wb("mix", "search", out / "mix-fit", "--output", out / "mix-search", "--samples", 20_000, "--top-k", 50)
    wb("mix", "build", out / "mix-search" / "mixture.json", "--output", out / "mix-corpus", "--tokens", 300_000)

    print("\n== 4. supervised fine-tuning of a tiny model on the curated GSM8K (and a weaker, shorter run)")
    base = tiny_model_path("llama")
    for name, steps in (("sft", 8 if quick else 120), ("sft-weak", 4 if quick else 30)):
        wb("train", "sft", "--model", base, "--data", out / "curated", "--prompt-field", "question",
           "--completion-field", "answer", "--max-steps", steps, "--batch-size", 8, "--lr", 2e-3,
           "--max-length", 256, "--log-every", 20, "--output", out / name)

    print("\n== 5. distil: sample answers from the tuned model and verify them against GSM8K")
    wb("distill", gsm8k_test, "--backend", "hf", "--model", out / "sft" / "model", "--prompt-field", "question",
       "--answer-field", "answer", "--limit", 8 if quick else 32, "--n", 2, "--max-tokens", 128,
       "--temperature", 0.7, "--seed", 1, "--verify", "math", "--output", out / "distill")

    print("\n== 6. delta-learning preference pairs: the longer SFT run is 'strong', the shorter 'weak'")
    wb("prefs", gsm8k_test, "--strong-model", out / "sft" / "model", "--strong-backend", "hf",
       "--weak-model", out / "sft-weak" / "model", "--weak-backend", "hf", "--prompt-field", "question",
       "--answer-field", "answer", "--limit", 4 if quick else 16, "--temperature", 0.7, "--seed", 1,
       "--max-tokens", 128, "--verify", "math", "--output", out / "prefs")

    pairs = json.loads((out / "prefs" / "manifest.json").read_text())["rows_out"]
    if pairs:
        print("\n== 7. DPO on those pairs, starting from the SFT model")
        wb("train", "dpo", "--model", out / "sft" / "model", "--data", out / "prefs", "--max-steps", 2 if quick else 6,
           "--batch-size", 4, "--log-every", 2, "--output", out / "dpo")
    else:
        print("\n== 7. DPO skipped: every pair was dropped (see runs' removed.parquet for the reasons)")

    summary(out)
    print(f"\ndemo finished in {time.time() - started:.0f} s; runs are under {out}/")
    print(f"look at them in the app: wb ui --workspace {out}   (then open http://127.0.0.1:8501)")
    return 0
