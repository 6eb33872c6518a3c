"""A plain causal-LM training loop over byte tokens, for RegMix proxy models.

Proxies are tiny Llama-style models trained from scratch on a weighted mixture of domains, then scored by
bits per byte on each held-out split. It is deliberately a flat loop (read it top to bottom): the sweep
runs hundreds of these, so it avoids every per-step cost it can.

    from mixopt.proxy import ProxyConfig, train_proxy
    metrics = train_proxy({"a": arr_a, "b": arr_b}, {"a": 0.3, "b": 0.7}, {"a": val_a}, ProxyConfig())
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np

from workbench.config import RunOptions, option

VOCAB = 256  # byte tokens
MODEL_SIZES = {
    # name: (hidden, layers, heads, mlp)
    "tiny": (64, 2, 4, 256),       # ~0.1M non-embedding parameters
    "small": (128, 2, 4, 512),     # ~0.4M
    "regmix-1m": (256, 2, 8, 512),  # RegMix's 1M proxy shape (~1.3M non-embedding)
    # GPU hosts: Olmix found 1M proxies rank 1B mixtures poorly (rho 0.73) and >= 15M ones well (> 0.89)
    "gpu-20m": (512, 6, 8, 1536),   # ~20.5M non-embedding
    "olmix-15m": (512, 6, 8, 1024),  # ~15.7M, the smallest size Olmix found to rank mixtures well
    "olmix-60m": (768, 10, 12, 1536),  # ~59M, RegMix's 60M shape (10 x 768)
}
# Training tokens per proxy for each preset (`wb mix plan --model-size X` plans for it). The CPU presets keep
# the budgets measured to finish a 48-run sweep in minutes on 2 cores; RegMix trained its 1M proxies on 1B
# tokens; the GPU presets get 100 tokens per non-embedding parameter, Olmix's 30M-parameter, 3B-token ratio.
TOKEN_BUDGETS = {"tiny": 400_000, "small": 800_000, "regmix-1m": 1_000_000_000, "gpu-20m": 2_000_000_000,
                 "olmix-15m": 1_500_000_000, "olmix-60m": 6_000_000_000}


@dataclass
class ProxyConfig(RunOptions):
    """How one proxy is trained and evaluated; recorded with the sweep so every run is comparable."""

    model_size: str = option("tiny", "proxy size", choices=sorted(MODEL_SIZES))
    tokens_per_run: int = option(400_000, "training tokens (bytes) per proxy", min=1)
    context: int = option(128, "sequence length in bytes", min=2)
    batch_size: int = option(16, "sequences per step", min=1)
    lr: float = option(3e-3, "AdamW learning rate (constant after warmup, as RegMix)")
    warmup_steps: int = option(20, "linear warmup steps")
    weight_decay: float = option(0.1, "AdamW weight decay")
    eval_tokens: int = option(32_768, "held-out bytes evaluated per domain")
    seed: int = option(0, "seed for weights and batches")
    threads: int = option(1, "torch threads per proxy (two 1-thread workers beat one 2-thread worker)", min=1)
    device: str = option("auto", "cpu, cuda, cuda:N, or auto (cuda when available, else cpu)")

    @property
    def steps(self) -> int:
        return max(1, self.tokens_per_run // (self.batch_size * self.context))


def proxy_device(config: ProxyConfig) -> str:
    """The torch device a proxy trains on ("auto": cuda when available)."""
    import torch

    if config.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {config.device!r}: torch sees no CUDA device here")
    return config.device


def non_embedding_parameters(model_size: str) -> int:
    """Parameters of a proxy shape outside its (tied) byte embedding, counted without building it."""
    hidden, layers, _heads, mlp = MODEL_SIZES[model_size]
    return layers * (4 * hidden * hidden + 3 * hidden * mlp + 2 * hidden) + hidden


def preload() -> None:
    """Import torch and the Llama model before forking workers: they share the modules instead of each
    paying the import (seconds of CPU per worker). Runs no torch op, so forking stays safe."""
    import torch  # noqa: F401
    from transformers.models.llama import modeling_llama  # noqa: F401


def build_proxy(config: ProxyConfig):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden, layers, heads, mlp = MODEL_SIZES[config.model_size]
    torch.manual_seed(config.seed)
    model_config = LlamaConfig(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=mlp, num_hidden_layers=layers,
                               num_attention_heads=heads, num_key_value_heads=heads,
                               max_position_embeddings=config.context, tie_word_embeddings=True,
                               bos_token_id=None, eos_token_id=None, pad_token_id=None)
    return LlamaForCausalLM(model_config)


def _windows(array: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    return array[starts[:, None] + np.arange(length)[None, :]]


def evaluate_bpb(model, array: np.ndarray, config: ProxyConfig) -> float:
    """Bits per byte on non-overlapping windows of `array` (up to `eval_tokens` bytes)."""
    import torch
    import torch.nn.functional as F

    span = config.context + 1
    n = max(1, min(len(array) - 1, config.eval_tokens) // config.context)
    starts = np.arange(n) * config.context
    starts = starts[starts + span <= len(array)]
    if len(starts) == 0:
        return float("nan")
    tokens = torch.from_numpy(_windows(array, starts, span).astype(np.int64)).to(next(model.parameters()).device)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for chunk in tokens.split(64):
            logits = model(input_ids=chunk[:, :-1]).logits
            total += F.cross_entropy(logits.reshape(-1, VOCAB), chunk[:, 1:].reshape(-1), reduction="sum").item()
            count += chunk[:, 1:].numel()
    model.train()
    return total / count / math.log(2)


def train_proxy(train: dict[str, np.ndarray], weights: dict[str, float], evals: dict[str, np.ndarray],
                config: ProxyConfig) -> dict:
    """Train one proxy on `weights` over `train` arrays; return metrics (`bpb.<name>` per eval set).

    A run whose loss stops being finite returns status "failed" with the step, never a number.
    """
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(config.threads)
    started = time.time()
    rng = np.random.default_rng(config.seed)
    names = [n for n in train if weights.get(n, 0.0) > 0]
    probs = np.array([weights[n] for n in names], dtype=float)
    probs /= probs.sum()
    span = config.context + 1
    for n in names:
        if len(train[n]) <= span:
            raise ValueError(f"domain {n!r} has {len(train[n])} training bytes; need more than {span}")
    device = proxy_device(config)
    model = build_proxy(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.95),
                                  weight_decay=config.weight_decay)
    choices = rng.choice(len(names), size=(config.steps, config.batch_size), p=probs)
    batch = np.empty((config.batch_size, span), dtype=np.int64)
    loss_value = float("nan")
    for step in range(config.steps):
        for i, name in enumerate(names):
            rows = np.flatnonzero(choices[step] == i)
            if len(rows):
                starts = rng.integers(0, len(train[name]) - span, size=len(rows))
                batch[rows] = _windows(train[name], starts, span)
        tokens = torch.from_numpy(batch).to(device, non_blocking=True)
        for group in optimizer.param_groups:
            group["lr"] = config.lr * min(1.0, (step + 1) / max(1, config.warmup_steps))
        logits = model(input_ids=tokens[:, :-1]).logits
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), tokens[:, 1:].reshape(-1))
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            return {"status": "failed", "error": f"loss became {loss_value} at step {step}",
                    "seconds": round(time.time() - started, 2)}
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    metrics = {f"bpb.{name}": evaluate_bpb(model, array, config) for name, array in evals.items()}
    bad = [k for k, v in metrics.items() if not math.isfinite(v)]
    if bad:
        return {"status": "failed", "error": f"{bad[0]} is not finite", "seconds": round(time.time() - started, 2)}
    return {"status": "ok", "error": None, "train_loss": loss_value, "tokens": config.steps * config.batch_size
            * config.context, "seconds": round(time.time() - started, 2), **metrics}


def config_dict(config: ProxyConfig) -> dict:
    return asdict(config)
