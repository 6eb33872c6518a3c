"""Helpers the two example loops share: GSM8K rows, chat rendering with a local tokenizer, checkpoints.

Hub downloads are impossible offline, so the tokenizer is loaded from a local path (`--tokenizer`, by
default the served model's directory); tinker-cookbook's `get_tokenizer` would try the hub.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

GSM8K = Path(__file__).resolve().parents[1] / "data" / "gsm8k" / "train.jsonl"


def load_gsm8k(path: str | os.PathLike = GSM8K) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    if not Path(path).exists():
        raise SystemExit(f"{path}: no such tokenizer directory; pass --tokenizer with a local path")
    return AutoTokenizer.from_pretrained(path)


def prompt_tokens(tokenizer, messages: list[dict]) -> list[int]:
    """The chat prompt up to where the assistant starts writing."""
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False))


def conversation_tokens(tokenizer, messages: list[dict]) -> tuple[list[int], list[float]]:
    """Tokens of a conversation ending in an assistant turn, and per-token weights: 1 on that turn's
    tokens, 0 on the prompt before it (the prompt renders as a prefix of the whole conversation)."""
    prompt = prompt_tokens(tokenizer, messages[:-1])
    full = list(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False))
    if full[:len(prompt)] != prompt:
        raise SystemExit("the chat template does not render the prompt as a prefix of the conversation")
    return full, [0.0] * len(prompt) + [1.0] * (len(full) - len(prompt))


def last_checkpoint(log_path: Path) -> dict | None:
    """The last line of `checkpoints.jsonl` (`{"name", "state_path", "batch"}`), or None."""
    path = log_path / "checkpoints.jsonl"
    if not path.exists():
        return None
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return json.loads(lines[-1]) if lines else None


def record(log_path: Path, name: str, row: dict) -> None:
    with open(log_path / name, "a") as f:
        f.write(json.dumps(row) + "\n")


def open_training_client(service, args, log_path: Path):
    """(training client, first batch): resumed from the newest `save_state` record in `log_path` (with its
    optimizer state), or a new LoRA client on `args.model_name`."""
    resume = last_checkpoint(log_path)
    if resume:
        print(f"resuming from {resume['state_path']} at batch {resume['batch']}")
        return service.create_training_client_from_state_with_optimizer(resume["state_path"]).result(), resume["batch"]
    return service.create_lora_training_client(base_model=args.model_name, rank=args.lora_rank).result(), 0


def save_on_schedule(training_client, args, log_path: Path, step: int, start: int) -> None:
    """`save_state` every `args.save_every` steps (not at the step a run resumed from), recorded for resume."""
    if args.save_every and step % args.save_every == 0 and step > start:
        path = training_client.save_state(f"{step:06d}").result().path
        record(log_path, "checkpoints.jsonl", {"name": f"{step:06d}", "state_path": path, "batch": step})
