"""The options every trainer shares (model, data, optimiser, schedule, LoRA, checkpoints), as a dataclass
that `SFTConfig` and `DPOConfig` extend. Every field has a default and help text for `--help`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from llm.runtime import dtype_option, threads_option
from workbench.config import RunOptions, add_config_arguments, option, validate
from workbench.errors import InputError

# the preference losses `trainers.losses.dpo_loss` implements (named here so configs need no torch)
DPO_LOSSES = ("sigmoid", "ipo", "hinge", "sigmoid_norm", "simpo")


@dataclass
class TrainConfig(RunOptions):
    model: str | None = option(None, "model directory (save_pretrained) or hub id to start from")
    data: str | None = option(None, "training data: a file, a directory of shards, or a run directory")
    output: str | None = option(None, "run directory to write (checkpoints, metrics.jsonl, model/)")
    max_length: int = option(1024, "sequences are truncated to this many tokens", min=2)
    batch_size: int = option(8, "sequences (or packed rows) per micro-batch on each rank", min=1)
    grad_accum: int = option(1, "micro-batches accumulated per optimiser step", min=1)
    epochs: float = option(1.0, "passes over the data (ignored when --max-steps is set)", min=0.0)
    max_steps: int = option(0, "optimiser steps to take; 0 = derive from --epochs", min=0)
    lr: float = option(1e-4, "peak learning rate", min=0.0)
    schedule: str = option("cosine", "learning-rate decay after warmup", choices=["cosine", "linear", "constant"])
    warmup_steps: int = option(0, "linear warmup steps")
    weight_decay: float = option(0.0, "AdamW weight decay (not applied to norms and biases)")
    max_grad_norm: float = option(1.0, "clip the global gradient norm to this (0 = no clipping)")
    seed: int = option(0, "seed for initialisation, data order and sampling")
    save_every: int = option(100, "write a resumable checkpoint every N steps (0 = only at the end)", min=0)
    keep_checkpoints: int = option(2, "how many of the newest checkpoints to keep")
    log_every: int = option(10, "print a progress line every N steps (metrics.jsonl gets every step)")
    lora_r: int = option(0, "LoRA rank; 0 = full fine-tuning")
    lora_alpha: int = option(16, "LoRA alpha")
    lora_dropout: float = option(0.0, "LoRA dropout")
    lora_targets: list[str] = option(["all-linear"], "modules LoRA adapts (peft target_modules)")
    dtype: str = dtype_option()  # one policy with wb serve and wb eval (llm.runtime)
    threads: int = threads_option()
    gradient_checkpointing: bool = option(False, "recompute activations in backward to save memory (GPU)")
    fsdp: bool = option(False, "under torchrun, shard parameters, gradients and optimiser state over ranks "
                               "(FSDP2 fully_shard) instead of replicating them (DDP)")
    price_trained: float | None = option(None, "USD per million trained tokens, for the run's cost (as "
                                         "pay-per-token training services bill)", min=0.0)
    price_sampled: float | None = option(None, "USD per million sampled tokens (RL rollouts), for the cost",
                                         min=0.0)
    max_cost: float | None = option(None, "stop cleanly, with a checkpoint, once the run's cost at --price-trained "
                                          "and --price-sampled reaches this many USD; raise it and re-run the same "
                                          "command to continue", min=0.0)
    attn_implementation: str = option("auto", "attention kernel; flash_attention_2 makes padding-free and packed "
                                      "rows varlen (GPU)", choices=["auto", "sdpa", "eager", "flash_attention_2"])
    eval_benchmark: list[str] = option([], "benchmarks the policy answers greedily during training, logged to "
                                       "metrics.jsonl as eval/NAME/accuracy: bundled gsm8k, math500, or "
                                       "prompt/answer files")
    eval_benchmark_every: int = option(0, "score --eval-benchmark every N steps (0 = before the first step and "
                                       "after the last only)", min=0)
    eval_limit: int = option(200, "items per --eval-benchmark", min=1)
    eval_max_tokens: int = option(256, "completion budget for --eval-benchmark answers", min=1)
    eval_verify: str = option("math", "verifier for --eval-benchmark files: math, exact, or package.module:function")
    eval_prompt_field: str | None = option(None, "prompt column of --eval-benchmark files (default: prompt)")
    eval_answer_field: str | None = option(None, "answer column of --eval-benchmark files (default: answer)")

    def check(self) -> None:
        """Raise `InputError` for missing, out-of-range or inconsistent options."""
        validate(self)
        for name in ("model", "data", "output"):
            if not getattr(self, name):
                raise InputError(f"--{name} is required")
        for name in ("batch_size", "grad_accum", "max_length"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1; got {getattr(self, name)}")
        if self.fsdp and self.lora_r > 0:
            raise InputError("--fsdp shards full fine-tuning; with --lora-r use DDP (drop --fsdp)")
        if not self.max_steps and self.epochs <= 0:
            raise InputError(f"--epochs {self.epochs}: must be greater than 0 (or set --max-steps)")
        if Path(self.output).exists() and not Path(self.output).is_dir():
            raise InputError(f"{self.output}: exists and is not a directory; choose another --output")


def add_train_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """The arguments of every `wb train` command: `--config x.yaml` and one flag per field of its config `cls`."""
    parser.add_argument("--config", help="YAML file of options; flags given here override it")
    add_config_arguments(parser, cls)
