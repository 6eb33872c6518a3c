"""The training core: a small client over a transformers causal LM (full fine-tuning or LoRA via peft).

    client = TrainingClient.load(ClientConfig(model="path/to/model", lr=1e-4, total_steps=100))
    metrics = client.forward_backward(batch, loss_fn)   # loss_fn(logps_N, batch) -> (loss, metrics)
    metrics |= client.optim_step()                      # clip, AdamW step, schedule step
    client.save_state(path, step=10)                    # model, optimiser, schedule, RNG, data position

Algorithms live in the loss functions and the loops (`sft`, `dpo`); this module only knows tensors.
It is rank-aware: under `torchrun` (WORLD_SIZE > 1) it joins the process group and wraps the model in
DDP, or with `fsdp=True` shards it with FSDP2 (`fully_shard` per decoder layer, then the root); losses are
normalised by global counts, so the gradient equals the single-process one. Under FSDP every rank takes
part in `save_state` / `save_model` (gathering full state dicts), and rank 0 writes.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from llm.eos import eos_ids
from trainers.losses import token_logprobs
from workbench.errors import InputError
from workbench.runfiles import temp_path

LossFn = Callable[[torch.Tensor, dict], tuple[torch.Tensor, dict]]
SCHEDULES = ("cosine", "linear", "constant")


@dataclass
class ClientConfig:
    model: str
    lr: float = 1e-4
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    warmup_steps: int = 0
    schedule: str = "cosine"
    total_steps: int = 1
    lora_r: int = 0  # 0 = full fine-tuning
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: ["all-linear"])
    dtype: str = "auto"  # llm.runtime.DTYPES: auto = bfloat16 on a GPU that supports it, else float32
    threads: int = 0  # torch CPU threads; 0 = llm.runtime.default_threads()
    gradient_checkpointing: bool = False
    fsdp: bool = False  # under torchrun: FSDP2 fully_shard instead of DDP
    attn_implementation: str = "auto"  # auto = the model's default (SDPA); flash_attention_2 gives varlen
    seed: int = 0


@dataclass
class Sampled:
    """One sampled completion: its tokens and each token's log-prob under the sampling distribution."""

    prompt_index: int
    tokens: list[int]
    logprobs: list[float]


def dist_info() -> tuple[int, int, int]:
    """(rank, world size, local rank) from the torchrun environment; (0, 1, 0) when run alone."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def all_reduce_sum(value: float) -> float:
    """Sum a number over ranks (identity when not distributed)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.float64, device="cuda" if torch.cuda.is_available() else "cpu")
    torch.distributed.all_reduce(t)
    return float(t.item())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    _check_model_path(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot load a tokenizer from this model path or hub id ({exc})") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _check_model_path(path: str) -> None:
    p = Path(path)
    looks_local = p.is_absolute() or path.startswith((".", "~")) or path.count("/") != 1
    if looks_local and not p.exists():
        raise InputError(f"{path}: model path does not exist; pass a directory saved with save_pretrained or a hub id")
    if p.exists() and not (p / "config.json").exists():
        raise InputError(f"{path}: not a model directory (no config.json)")


def lr_lambda(step: int, warmup: int, total: int, schedule: str) -> float:
    """Multiplier of the peak learning rate: linear warmup, then cosine / linear decay to 0, or constant."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1 + math.cos(math.pi * progress)) if schedule == "cosine" else 1.0 - progress


class TrainingClient:
    """A causal LM with its optimiser and schedule; see the module docstring."""

    def __init__(self, model, tokenizer, config: ClientConfig):
        self.config = config
        self.tokenizer = tokenizer
        self.rank, self.world_size, local_rank = dist_info()
        self.device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device)
        # every id that ends a sample (Llama 3 and Qwen2.5 list several): sampling stops at each, rollouts
        # count a completion as finished when it ends with one
        self.eos_ids = eos_ids(getattr(model, "generation_config", None), tokenizer)
        self.is_lora = config.lora_r > 0
        if config.gradient_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.ddp = None
        self.fsdp = config.fsdp and self.world_size > 1
        if self.world_size > 1:
            if not torch.distributed.is_initialized():
                torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
            if self.fsdp:
                self.model = _fully_shard(self.model)
            else:
                self.ddp = torch.nn.parallel.DistributedDataParallel(
                    self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        params = [p for p in self.model.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=config.lr, betas=(0.9, 0.999), eps=1e-8, fused=self.device.type == "cuda")
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_lambda(s, config.warmup_steps, config.total_steps, config.schedule))

    @classmethod
    def load(cls, config: ClientConfig, tokenizer=None) -> TrainingClient:
        """Load `config.model` (a local directory or hub id), add LoRA when `lora_r > 0`."""
        from transformers import AutoModelForCausalLM

        from llm.runtime import apply_threads, record_load, resolve_dtype

        tokenizer = tokenizer or load_tokenizer(config.model)
        seed_everything(config.seed)
        threads = apply_threads(config.threads)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = getattr(torch, resolve_dtype(config.dtype, device))
        try:
            attn = None if config.attn_implementation == "auto" else config.attn_implementation
            model = AutoModelForCausalLM.from_pretrained(config.model, dtype=dtype, attn_implementation=attn)
        except OSError as exc:
            raise InputError(f"{config.model}: cannot load the model ({exc})") from None
        record_load(config.model, str(dtype).removeprefix("torch."), threads, device)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        if config.lora_r > 0:
            model = _add_lora(model, config)
        return cls(model, tokenizer, config)

    @property
    def module(self):
        """The model being called: the DDP wrapper when distributed, else the model itself."""
        return self.ddp if self.ddp is not None else self.model

    def _logprobs(self, model, batch: dict) -> torch.Tensor:
        """Log-probs of the masked tokens, flat in row-major order: shape [N] for N = loss_mask.sum(); a
        `temperature` entry in the batch divides the logits first (RL scores tokens as they were sampled)."""
        mask = batch["loss_mask"].to(self.device)
        b_idx, t_idx = mask.nonzero(as_tuple=True)
        keep, where = torch.unique(t_idx - 1, return_inverse=True)  # logits at t-1 predict token t
        out = model(input_ids=batch["input_ids"].to(self.device), position_ids=batch["position_ids"].to(self.device),
                    attention_mask=batch["attention_mask"].to(self.device) if "attention_mask" in batch else None,
                    logits_to_keep=keep, use_cache=False)
        logits = out.logits[b_idx, where]
        if batch.get("temperature", 1.0) != 1.0:  # score as the sampler drew: softmax(logits / T)
            logits = logits / batch["temperature"]
        return token_logprobs(logits, batch["input_ids"].to(self.device)[b_idx, t_idx])

    def forward_backward(self, batch: dict, loss_fn: LossFn) -> dict[str, float]:
        """Forward the batch, compute `loss_fn(logps_N, batch)`, backpropagate (gradients accumulate)."""
        self.module.train()
        logps = self._logprobs(self.module, batch)
        loss, metrics = loss_fn(logps, batch)
        # DDP averages gradients over ranks; losses are normalised by global counts, so undo the average.
        (loss * self.world_size).backward()
        return {"loss": float(loss.detach()), **metrics}

    def optim_step(self) -> dict[str, float]:
        """Clip gradients, take an AdamW step, advance the schedule; return grad norm and the lr used."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        norm = torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm or float("inf"))
        if hasattr(norm, "full_tensor"):  # FSDP: a DTensor over the ranks' shards
            norm = norm.full_tensor()
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"grad_norm": float(norm), "lr": lr}

    def freeze_reference(self) -> None:
        """Keep a frozen copy of the current weights as the reference model (not needed with LoRA, whose
        reference is the base model with the adapter disabled)."""
        import copy

        if self.fsdp:  # a sharded module cannot be deep-copied: rebuild it from the gathered weights
            reference = _fresh_model(self.model, self._full_model_state(everyone=True))
            self.reference = _fully_shard(reference.to(self.device)).eval().requires_grad_(False)
        elif not self.is_lora:
            self.reference = copy.deepcopy(self.model).eval().requires_grad_(False)

    @torch.no_grad()
    def compute_logprobs(self, batch: dict, reference: bool = False) -> torch.Tensor:
        """Log-probs of the batch's masked tokens without gradients. `reference=True` scores them with the
        frozen reference: the copy from `freeze_reference`, or with LoRA the base model (adapter disabled)."""
        self.model.eval()
        if reference and self.is_lora:
            with self.model.disable_adapter():
                return self._logprobs(self.model, batch)
        if reference and getattr(self, "reference", None) is not None:
            return self._logprobs(self.reference, batch)
        return self._logprobs(self.model, batch)

    @torch.no_grad()
    def sample(self, prompts: list[list[int]], n: int = 1, max_new_tokens: int = 64, temperature: float = 1.0,
               top_p: float = 1.0) -> list[Sampled]:
        """`n` completions per prompt (token ids), each with per-token log-probs under the sampling
        distribution (temperature and top-p applied, as the tokens were drawn); temperature 0 is greedy."""
        self.model.eval()
        pad = self.tokenizer.pad_token_id
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        attn = torch.zeros_like(ids)
        for i, p in enumerate(prompts):  # left padding, so every prompt ends where generation starts
            ids[i, width - len(p):] = torch.tensor(p)
            attn[i, width - len(p):] = 1
        # temperature 0 is greedy decoding (held-out evaluation); the log-probs are then the raw model's
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0} if temperature > 0 \
            else {"do_sample": False}
        eos = self.eos_ids
        out = self.model.generate(input_ids=ids.to(self.device), attention_mask=attn.to(self.device), **sampling,
                                  max_new_tokens=max_new_tokens, num_return_sequences=n, pad_token_id=pad,
                                  eos_token_id=sorted(eos), return_dict_in_generate=True, output_scores=True)
        new = out.sequences[:, width:]
        logps = torch.stack([torch.log_softmax(s.float(), -1) for s in out.scores], 1)
        token_logps = logps.gather(-1, new.unsqueeze(-1)).squeeze(-1)
        results = []
        for j in range(new.shape[0]):  # cut after the first EOS of any kind: what follows is padding
            toks = new[j].tolist()
            end = next((k + 1 for k, t in enumerate(toks) if t in eos), len(toks))
            results.append(Sampled(j // n, toks[:end], token_logps[j, :end].tolist()))
        return results

    def save_state(self, path: str | os.PathLike, **extra: object) -> None:
        """Write model (adapter only for LoRA), optimiser, schedule, RNG and `extra` (e.g. the data
        position) to `path/state.pt` atomically; only rank 0 writes (under FSDP every rank must call it:
        the full state is gathered from all of them)."""
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

            model_state = self._full_model_state()
            optim_state = get_optimizer_state_dict(self.model, self.optimizer,
                                                   options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        elif self.rank == 0:
            trainable = {n for n, p in self.model.named_parameters() if p.requires_grad}
            model_state = {k: v for k, v in self.model.state_dict().items() if not self.is_lora or k in trainable}
            optim_state = self.optimizer.state_dict()
        if self.rank != 0:
            return
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {
            "model": model_state,
            "optimizer": optim_state,
            "scheduler": self.scheduler.state_dict(),
            "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
            "extra": extra,
        }
        tmp = temp_path(path / "state.pt")
        torch.save(state, tmp)
        os.replace(tmp, path / "state.pt")

    def load_state(self, path: str | os.PathLike) -> dict:
        """Restore what `save_state` wrote; return its `extra`."""
        state = torch.load(Path(path) / "state.pt", map_location=self.device, weights_only=False)
        if self.fsdp:  # every rank reads the full state and keeps its shards
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                set_model_state_dict,
                set_optimizer_state_dict,
            )

            options = StateDictOptions(full_state_dict=True)
            set_model_state_dict(self.model, state["model"], options=options)
            set_optimizer_state_dict(self.model, self.optimizer, state["optimizer"], options=options)
        else:
            self.model.load_state_dict(state["model"], strict=not self.is_lora)
            self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        rng = state["rng"]
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"].cpu())
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        return state["extra"]

    def save_model(self, path: str | os.PathLike) -> None:
        """A `from_pretrained`-loadable model directory (LoRA merged into the weights, the adapter kept in
        `path/adapter`) with the tokenizer; only rank 0 writes (under FSDP every rank must call it)."""
        if self.fsdp:
            full = self._full_model_state()
            if self.rank == 0:
                _fresh_model(self.model, full).save_pretrained(path)
                self.tokenizer.save_pretrained(path)
            torch.distributed.barrier()
            return
        if self.rank != 0:
            return
        path = Path(path)
        model = self.model
        if self.is_lora:
            model.save_pretrained(path / "adapter")
            import copy

            model = copy.deepcopy(model).merge_and_unload()
        model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)

    def _full_model_state(self, everyone: bool = False) -> dict[str, torch.Tensor]:
        """The unsharded weights, gathered from every rank (all must call), on the CPU: on rank 0 only,
        unless `everyone`."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=not everyone)
        state = get_model_state_dict(self.model, options=options)
        return {k: v.cpu() for k, v in state.items()} if everyone else state

    def trainable_parameters(self) -> dict[str, torch.Tensor]:
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}


def _fully_shard(model):
    """FSDP2: shard each decoder layer (the model's `_no_split_modules` classes), then the root."""
    from torch.distributed.fsdp import fully_shard

    layer_classes = set(getattr(model, "_no_split_modules", None) or [])
    for module in model.modules():
        if type(module).__name__ in layer_classes:
            fully_shard(module)
    return fully_shard(model)


def _fresh_model(like, state: dict[str, torch.Tensor]):
    """An unsharded model of `like`'s architecture holding `state` (the gathered FSDP weights)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(like.config, dtype=next(iter(state.values())).dtype)
    model.load_state_dict(state)
    return model


def _add_lora(model, config: ClientConfig):
    from workbench.errors import require

    peft = require("peft")
    targets = config.lora_targets[0] if config.lora_targets == ["all-linear"] else config.lora_targets
    lora = peft.LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                           target_modules=targets, task_type="CAUSAL_LM")
    return peft.get_peft_model(model, lora)


def client_config(cfg: object, total_steps: int) -> ClientConfig:
    """The `ClientConfig` a trainer's options (`TrainConfig` and its subclasses) describe."""
    names = {f.name for f in fields(ClientConfig)} - {"total_steps"}
    return ClientConfig(total_steps=total_steps, **{n: getattr(cfg, n) for n in names if hasattr(cfg, n)})
