"""The RL core shared by the GRPO family and on-policy distillation: options, items, one training step,
the run's set-up and its step loop.

A recipe (`trainers.grpo`, `trainers.opd`) samples groups, turns them into `Item`s (prompt + completion
ids, per-token advantages, the sampler's log-probs) and hands them to `train_items`; `setup_rl` opens the
run directory, client and prompts, and `run_rl` drives the recipe's step function with checkpoints,
metrics and resume.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llm.runtime import loaded_models
from trainers.config import TrainConfig
from workbench.config import option
from workbench.errors import InputError
from workbench.rundir import RunResult

# trainers.rl_losses.NORMALISERS / LOSS_TYPES, named here without importing torch
NORMALISERS = ("grpo", "bnpo", "dr_grpo", "dapo")
OBJECTIVES = ("cispo", "gvpo", "riskpo")


@dataclass
class RLConfig(TrainConfig):
    """Sampling and policy-loss options shared by `grpo` and `opd`."""

    prompts: str | None = option(None, "prompt rows (prompt, answer?, extra columns): a file, shards or a run")
    prompt_field: str = option("prompt", "column holding the prompt (e.g. question for GSM8K)")
    lr: float = option(1e-6, "peak learning rate", min=0.0)
    batch_size: int = option(8, "completions per micro-batch (the step's micro-batches are accumulated)", min=1)
    prompts_per_step: int = option(4, "prompts (groups) per generation batch", min=1)
    num_generations: int = option(8, "completions sampled per prompt (G; G' when --gfpo-keep is set); a group needs 2", min=2)
    max_new_tokens: int = option(128, "completion token budget (L_max)", min=1)
    temperature: float = option(1.0, "sampling temperature (the trainer scores tokens at the same temperature)")
    top_p: float = option(1.0, "nucleus sampling mass")
    loss_type: str = option("dapo", "normaliser: grpo (per-sequence mean), bnpo (micro-batch token mean), dr_grpo "
                            "(constant), dapo (token mean over the generation batch)", choices=list(NORMALISERS))
    epsilon: float = option(0.2, "lower clip range epsilon_low")
    epsilon_high: float = option(0.2, "upper clip range (clip-higher: DAPO uses 0.28)")
    importance_sampling_level: str = option("token", "token ratios, or sequence (GSPO, length-normalised)",
                                            choices=["token", "sequence"])
    beta: float = option(0.0, "weight of the k3 KL to the starting model (0 = no reference)", min=0.0)
    num_iterations: int = option(1, "optimiser passes over each generation batch (old log-probs kept)", min=1)
    rollout_correction: str = option("none", "importance weight pi_trainer / pi_generator for samples from a generator "
                                     "that is not the trainer: tis (truncated at the cap) or mis (zeroed outside "
                                     "[1/cap, cap])", choices=["none", "tis", "mis"])
    correction_level: str = option("token", "rollout-correction ratio per token, or per sequence (product of its "
                                   "tokens' ratios)", choices=["token", "sequence"])
    correction_cap: float = option(2.0, "rollout-correction cap (> 1)", min=1.0)
    mask_truncated_completions: bool = option(False, "do not train on completions cut at max_new_tokens (DAPO)")
    sample_chunk: int = option(8, "prompts per generate call")
    reward: list[str] = option([], "task rewards as NAME[:WEIGHT]: math, format, length, overlong, or "
                               "package.module:function")
    scale_rewards: str = option("group", "advantage scale: group std, batch std, or none (Dr. GRPO)",
                                choices=["group", "batch", "none"])
    format_pattern: str = option(r"####\s*-?[\d,]+(\.\d+)?\s*$", "regex the format reward searches for")
    length_target: int = option(64, "length reward peak, in completion tokens")
    overlong_buffer: int = option(32, "soft overlong penalty buffer (tokens before max_new_tokens)")


    def check(self) -> None:
        self.data = self.data or self.prompts
        if not self.data:
            raise InputError("--prompts is required")
        super().check()
        if int(os.environ.get("WORLD_SIZE", 1)) > 1:
            raise InputError("RL training runs in one process; launch it without torchrun")
        if self.temperature <= 0 or not 0 < self.top_p <= 1:
            raise InputError(f"RL samples: need --temperature > 0 and 0 < --top-p <= 1; got {self.temperature}, "
                             f"{self.top_p}")
        for name in ("prompts_per_step", "num_generations", "max_new_tokens", "num_iterations"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1; got {getattr(self, name)}")
        if self.grad_accum != 1:
            raise InputError(f"--grad-accum {self.grad_accum}: RL commands already accumulate every micro-batch of a "
                             "generation batch into one optimiser step; set the step size with --prompts-per-step "
                             "and --num-generations, and the micro-batch with --batch-size")
        try:
            re.compile(self.format_pattern)
        except re.error as exc:
            raise InputError(f"--format-pattern {self.format_pattern!r}: not a valid regular expression ({exc})") from None


@dataclass
class Item:
    """One completion to train on: prompt + completion ids, the completion mask, per-token advantages
    and the sampler's log-probs of the completion tokens."""

    example: object  # trainers.render.Example
    adv: np.ndarray  # [completion tokens]
    sampler_logps: np.ndarray  # [completion tokens]; NaN where the generator did not report one
    group: int = 0  # index of its prompt's group in the generation batch (gvpo keeps groups whole)


def make_item(prompt_ids: list[int], tokens: list[int], adv: float | np.ndarray, sampler_logps: list[float],
              group: int = 0) -> Item:
    from trainers.render import Example

    ids = np.asarray(prompt_ids + tokens, dtype=np.int64)
    mask = np.zeros(len(ids), dtype=bool)
    mask[len(prompt_ids):] = True
    adv_t = np.broadcast_to(np.asarray(adv, dtype=np.float64), (len(tokens),)).copy()
    return Item(Example(ids, mask), adv_t, np.asarray(sampler_logps, dtype=np.float64), group)


def load_prompts(cfg: RLConfig, tokenizer):
    """(Rendered prompts: items are (prompt ids, row)), with errors naming file and row."""
    from trainers.records import load_rendered
    from trainers.rollouts import render_prompt

    def render(row: dict, where: str):
        ids = render_prompt(tokenizer, row, where)
        if len(ids) + cfg.max_new_tokens > cfg.max_length:
            return "prompt + max_new_tokens longer than max_length"
        return ids, row

    return load_rendered(cfg.data, "rl_prompts", render, {cfg.prompt_field: "prompt"})


def micro_batches(items: list[Item], batch_size: int, whole_groups: bool) -> list[list[Item]]:
    """Split a generation batch into micro-batches of `batch_size` completions: sorted by length (similar
    lengths share a padded batch), or, with `whole_groups` (gvpo), whole groups at a time (at least one)."""
    if not whole_groups:
        items = sorted(items, key=lambda it: len(it.example))
        return [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    by_group: dict[int, list[Item]] = {}
    for it in items:
        by_group.setdefault(it.group, []).append(it)
    out: list[list[Item]] = [[]]
    for members in by_group.values():
        if out[-1] and len(out[-1]) + len(members) > batch_size:
            out.append([])
        out[-1].extend(members)
    return [mb for mb in out if mb]


def train_items(client, items: list[Item], cfg: RLConfig, ref_needed: bool, remote: bool = False) -> dict:
    """`num_iterations` optimiser passes over `items` (the last pass's step is left to the caller, as
    `train_loop` takes it); returns loss, clip fractions, entropy, KL, the time split and, when the samples
    came from another generator (`remote`) or a rollout correction is on, the generator-vs-trainer gap."""
    import torch

    from trainers.collate import collate, token_seq_ids
    from trainers.rl_losses import generator_gap, gvpo_loss, importance_weights, policy_loss

    pad = client.tokenizer.pad_token_id
    gvpo = cfg.loss_type == "gvpo"
    micro = micro_batches(items, cfg.batch_size, whole_groups=gvpo)
    batches = []
    for mb in micro:
        batch = collate([it.example for it in mb], "padded", pad)
        batch["temperature"] = cfg.temperature
        batches.append(batch)
    t0 = time.perf_counter()
    need_old = cfg.num_iterations > 1 or cfg.rollout_correction != "none" or remote
    old = [client.compute_logprobs(b) if need_old else None for b in batches]
    ref = [client.compute_logprobs(b, reference=True) if ref_needed else None for b in batches]
    t_logprobs = time.perf_counter() - t0
    total_tokens = float(sum(len(it.adv) for it in items))
    num_groups = len({it.group for it in items})
    sums: dict[str, float] = {}
    gen_all, old_all, changed_all = [], [], []
    t0 = time.perf_counter()
    loss_total = 0.0
    for it_pass in range(cfg.num_iterations):
        loss_total = 0.0
        for mb, batch, old_N, ref_N in zip(micro, batches, old, ref, strict=True):
            seq_N = token_seq_ids(batch)
            adv_N = torch.from_numpy(np.concatenate([it.adv for it in mb])).float()
            gen_N = torch.from_numpy(np.concatenate([it.sampler_logps for it in mb])).float()
            rho, changed = None, None
            if old_N is not None:
                old_N = old_N.float().cpu()
                gen_N = torch.where(torch.isnan(gen_N), old_N, gen_N)  # unreported: no gap, no correction
                rho, changed = importance_weights(old_N, gen_N, seq_N, len(mb), cfg.rollout_correction,
                                                  cfg.correction_level, cfg.correction_cap)
                if it_pass == 0:
                    gen_all.append(gen_N)
                    old_all.append(old_N)
                    changed_all.append(changed)
                if cfg.rollout_correction == "none":
                    rho = None
            group_S = torch.tensor([it.group for it in mb])

            def loss_fn(logps, _batch, mb=mb, seq_N=seq_N, adv_N=adv_N, old_N=old_N, ref_N=ref_N, rho=rho,
                        group_S=group_S):
                logps_cpu = logps.float().cpu() if logps.device.type != "cpu" else logps
                old_used = logps_cpu.detach() if old_N is None else old_N
                if gvpo:
                    return gvpo_loss(logps_cpu, old_used, adv_N, seq_N, len(mb), group_S, num_groups,
                                     cfg.gvpo_beta, rho)
                return policy_loss(logps_cpu, old_used, adv_N, seq_N, len(mb), cfg.loss_type, cfg.epsilon,
                                   cfg.epsilon_high, cfg.importance_sampling_level, ref_N, cfg.beta, rho,
                                   grad_accum=len(micro), max_completion_length=cfg.max_new_tokens,
                                   total_tokens=total_tokens, cispo_cap=getattr(cfg, "cispo_cap", 5.0))

            out = client.forward_backward(batch, loss_fn)
            loss_total += out["loss"]
            if it_pass == cfg.num_iterations - 1:  # log the last pass, token-weighted
                for k, v in out.items():
                    if k not in ("loss", "tokens"):
                        sums[k] = sums.get(k, 0.0) + v * out["tokens"]
        if it_pass < cfg.num_iterations - 1:
            client.optim_step()
    t_train = time.perf_counter() - t0
    metrics = {k: v / max(total_tokens, 1) for k, v in sums.items()}
    if old_all:
        metrics.update(generator_gap(torch.cat(old_all), torch.cat(gen_all)))
        # tis: share of tokens whose weight was truncated; mis: share masked to 0; none: 0
        metrics["rollout/corrected_share"] = float(torch.cat(changed_all).float().mean()) if total_tokens else 0.0
    metrics.update({"loss": loss_total if items else 0.0, "time/logprobs": round(t_logprobs, 4),
                    "time/training": round(t_train, 4),
                    "train_tokens_per_s": round(total_tokens * cfg.num_iterations / max(t_train, 1e-9), 1)})
    return metrics


def rollout_metrics(groups, sampled_tokens: int, t_gen: float) -> dict:
    """Reward mean and spread per reward and overall, completion lengths, truncation, generation speed."""
    lengths = np.array([len(t) for g in groups for t in g.tokens]) if groups else np.zeros(1)
    out: dict[str, float] = {}
    if groups:
        rewards = np.stack([g.rewards for g in groups])
        out["reward"] = float(rewards.mean())
        out["reward_std"] = float(rewards.std(axis=1, ddof=1).mean()) if rewards.shape[1] > 1 else 0.0
        for name in groups[0].per_reward:
            per = np.stack([g.per_reward[name] for g in groups])
            out[f"rewards/{name}/mean"] = float(np.nanmean(per)) if np.isfinite(per).any() else float("nan")
            out[f"rewards/{name}/std"] = float(np.nanstd(per)) if np.isfinite(per).any() else float("nan")
        out["completions/clipped_ratio"] = float(np.mean([t for g in groups for t in g.truncated]))
    out.update({"completions/mean_length": float(lengths.mean()), "completions/min_length": int(lengths.min()),
                "completions/max_length": int(lengths.max()), "time/generation": round(t_gen, 4),
                "gen_tokens_per_s": round(sampled_tokens / max(t_gen, 1e-9), 1)})
    return out


@dataclass
class RLRun:
    """What both RL loops set up: the options, rewards, tokenizer, prompts, step plan and the client."""

    cfg: RLConfig
    specs: list
    tokenizer: object
    data: object  # trainers.records.Rendered of (prompt ids, row)
    plan: object  # trainers.loop.StepPlan over prompt indices
    total: int
    client: object
    sampled: int = 0
    prefill: int = 0  # tokens a remote teacher or judge read (on-policy distillation's endpoint teacher)

    @property
    def prompts(self) -> list:
        return self.data.items

    def step_prompts(self, step: int) -> list:
        return [self.prompts[u[0]] for u in self.plan.step_units(step)]


def setup_rl(cfg: RLConfig) -> RLRun:
    """Check the options, parse rewards, load tokenizer, prompts and the policy client."""
    from trainers.client import TrainingClient, client_config, load_tokenizer
    from trainers.loop import StepPlan
    from trainers.rewards import parse_reward

    cfg.check()
    specs = [parse_reward(r, cfg) for r in cfg.reward]
    tokenizer = load_tokenizer(cfg.model)
    data = load_prompts(cfg, tokenizer)
    plan = StepPlan([[i] for i in range(len(data.items))], min(cfg.prompts_per_step, len(data.items)), 1, cfg.seed)
    total = plan.total_steps(cfg.epochs, cfg.max_steps)
    client = TrainingClient.load(client_config(cfg, total * cfg.num_iterations), tokenizer)
    return RLRun(cfg, specs, tokenizer, data, plan, total, client)


def item_counts(items: list[Item]) -> dict:
    """The token counts `train_loop` needs (tokens processed, completion tokens trained) and the sequences."""
    return {"tokens": int(sum(len(it.example) for it in items)) or 1,
            "trained_tokens": int(sum(len(it.adv) for it in items)), "sequences": len(items)}


def run_rl(run: RLRun, stage: str, step_fn, log, after_step=None) -> RunResult:
    """Train (or resume) with `step_fn` inside the run directory, save the model, return the manifest."""
    from trainers.loop import run_dir, train_loop, train_usage

    output = Path(run.cfg.output)
    with run_dir(output, stage, run.cfg, 0, inputs=[run.data.source]) as rd:
        last = train_loop(run.client, run.cfg, output, run.total, step_fn, log=log, progress=rd.progress,
                          sampled_tokens=lambda: run.sampled, after_step=after_step)
        run.client.save_model(output / "model")
        usage = train_usage(run.cfg, int(last.get("trained_tokens_total", 0)), run.sampled, run.prefill)
        return rd.finish(rows_in=run.data.rows_in, rows_out=len(run.prompts), dropped=dict(run.data.dropped),
                         usage=usage, steps=run.total, final=last, model_dir=str(output / "model"),
                         runtime=loaded_models(run.cfg.model))
