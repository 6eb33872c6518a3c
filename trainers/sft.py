"""Supervised fine-tuning: `wb train sft --model PATH --data RUN_OR_FILE --output DIR [--config sft.yaml]`.

Rows (`messages`, or `prompt`/`completion`) are rendered with the chat template; the loss is the token
mean of the NLL over assistant tokens of the whole optimiser step. Micro-batches are padded rows (the
default), one padding-free row (position ids restart per example), or rows packed to `max_length`
tokens; no token ever attends across examples. With SDPA the per-example mask is dense over a whole row,
so padding-free costs (row length)^2 attention and pays off only with a varlen kernel (flash-attention
on a GPU); packed rows of `max_length` keep that cost bounded. `bench/sft_throughput.py` measures it.
Re-running the same command resumes from the last checkpoint.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llm.runtime import loaded_models
from trainers.config import TrainConfig, add_train_arguments
from workbench.config import option
from workbench.rundir import RunResult


@dataclass
class SFTConfig(TrainConfig):
    layout: str = option("padded", "how a micro-batch is laid out: padded rows, one concatenated row with "
                         "restarting position ids (fast with flash-attention), or packed rows of max_length tokens "
                         "(--batch-size then counts rows)", choices=["padded", "padding_free", "packed"])
    prompt_field: str = option("prompt", "column holding the prompt when rows have no messages (e.g. question)")
    completion_field: str = option("completion", "column holding the completion (e.g. answer)")
    eval_data: str | None = option(None, "held-out data for the eval loss (default: split off --eval-fraction)")
    eval_fraction: float = option(0.05, "fraction of rows held out for the eval loss when --eval-data is unset",
                                 min=0.0, max=0.5)
    max_eval_rows: int = option(256, "at most this many held-out rows")
    eval_every: int = option(0, "compute the eval loss every N steps (0 = only at the end)")


def render_fn(tokenizer, max_length: int):
    """Row -> truncated `Example`, or the reason it is dropped."""
    from trainers.render import render_sft, truncate

    def render(row: dict, where: str):
        ex = truncate(render_sft(tokenizer, row, where), max_length)
        return ex if ex.mask[1:].any() else "no assistant tokens within max_length"

    return render


def split_eval(n: int, cfg: SFTConfig) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, eval indices): a seeded random holdout of `eval_fraction` (at least one row)."""
    if cfg.eval_data or cfg.eval_fraction <= 0 or n < 2:
        return np.arange(n), np.arange(0)
    k = min(cfg.max_eval_rows, max(1, int(round(n * cfg.eval_fraction))))
    order = np.random.default_rng([cfg.seed, 12345]).permutation(n)
    return np.sort(order[k:]), np.sort(order[:k])


def nll_eval(client, examples: list, batch_size: int, layout: str = "padded") -> float:
    """Mean NLL per trained token over `examples` (no gradients)."""
    from trainers.collate import collate

    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        chunk = examples[i : i + batch_size]
        logps = client.compute_logprobs(collate(chunk, layout, client.tokenizer.pad_token_id))
        total -= float(logps.sum())
        count += logps.numel()
    return total / max(count, 1)


def train_sft(cfg: SFTConfig, log=print) -> RunResult:
    """Run (or resume) SFT into `cfg.output`; return the manifest."""
    from trainers.client import TrainingClient, all_reduce_sum, client_config, dist_info, load_tokenizer
    from trainers.collate import collate, pack, trained_tokens
    from trainers.loop import StepPlan, run_dir, train_loop, train_usage
    from trainers.losses import sft_loss
    from trainers.records import load_rendered

    cfg.check()
    output = Path(cfg.output)
    tokenizer = load_tokenizer(cfg.model)
    render = render_fn(tokenizer, cfg.max_length)
    rename = {cfg.prompt_field: "prompt", cfg.completion_field: "completion"}
    data = load_rendered(cfg.data, "sft", render, rename)
    train_idx, eval_idx = split_eval(len(data.items), cfg)
    examples = [data.items[i] for i in train_idx]
    held_out = [data.items[i] for i in eval_idx]
    inputs = [data.source]
    if cfg.eval_data:
        extra = load_rendered(cfg.eval_data, "sft", render, rename)
        held_out, inputs = extra.items, [data.source, extra.source]
    if cfg.layout == "packed":
        units = pack([len(e) for e in examples], cfg.max_length)
    else:
        units = [[i] for i in range(len(examples))]
    rank, world, _ = dist_info()
    log = log if rank == 0 else (lambda *_: None)
    plan = StepPlan(units, cfg.batch_size, cfg.grad_accum, cfg.seed, world, rank)
    total = plan.total_steps(cfg.epochs, cfg.max_steps)
    client = TrainingClient.load(client_config(cfg, total), tokenizer)
    pad = tokenizer.pad_token_id
    log(f"sft: {len(examples):,} train rows ({len(held_out):,} held out), {len(units):,} units, "
        f"{total} steps on {world} rank(s), layout {cfg.layout}")

    def step_fn(step: int) -> dict:
        micro = [[examples[i] for i in mb] for mb in plan.micro_batches(step)]
        if cfg.layout == "padded" and len(micro) > 1:  # similar lengths share a micro-batch: less padding,
            ordered = sorted((e for mb in micro for e in mb), key=len)  # same step gradient (global mean)
            micro = [ordered[i : i + cfg.batch_size] for i in range(0, len(ordered), cfg.batch_size)]
        n_tokens = all_reduce_sum(sum(trained_tokens(mb) for mb in micro))
        loss = 0.0
        for mb in micro:
            batch = collate(mb, cfg.layout, pad, capacity=cfg.max_length)
            out = client.forward_backward(batch, lambda logps, _batch: sft_loss(logps, n_tokens))
            loss += out["loss"]
        tokens = all_reduce_sum(sum(len(e) for mb in micro for e in mb))
        return {"loss": all_reduce_sum(loss), "tokens": int(tokens), "trained_tokens": int(n_tokens),
                "epoch": round((step + 1) / plan.steps_per_epoch, 4)}

    def eval_fn() -> dict:
        return {"eval_loss": nll_eval(client, held_out, cfg.batch_size)} if held_out else {}

    with run_dir(output, "train-sft", cfg, rank, inputs=inputs) as run:
        last = train_loop(client, cfg, output, total, step_fn, eval_fn, cfg.eval_every, log=log,
                          progress=run.progress)
        client.save_model(output / "model")
        usage = train_usage(cfg, int(last.get("trained_tokens_total", 0)))
        return run.finish(rows_in=data.rows_in, rows_out=len(data.items), dropped=dict(data.dropped), usage=usage,
                          steps=total, final=last, model_dir=str(output / "model"), runtime=loaded_models(cfg.model))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`wb train sft`: `--config` and one flag per SFTConfig field."""
    add_train_arguments(parser, SFTConfig)


def run(args: argparse.Namespace) -> int:
    from trainers.loop import run_train_command

    return run_train_command(args, SFTConfig, train_sft)
