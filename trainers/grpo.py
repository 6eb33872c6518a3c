"""The GRPO family: `wb train grpo --model PATH --prompts RUN_OR_FILE --output DIR --reward R[:WEIGHT]...`.

Each step samples G completions for `prompts_per_step` prompts with the policy itself (transformers
`generate` through `TrainingClient.sample`; there is no vLLM generator), scores them with the weighted
rewards (`trainers.rewards`), optionally refills zero-spread groups (DAPO dynamic sampling) or keeps the
k best of G' (GFPO), and takes `num_iterations` optimiser steps on the batch with the clipped surrogate of
`trainers.rl_losses` (grpo / bnpo / dr_grpo / dapo normalisers, clip-higher, GSPO, k3 KL, IS correction).
metrics.jsonl gets rewards per function, clip fractions, entropy, KL, lengths and the time split between
generation, log-prob recomputation and training. Re-running the same command resumes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainers.config import TrainConfig
from workbench.config import option
from workbench.errors import InputError
from workbench.rundir import RunResult

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")  # trainers.rl_losses.LOSS_TYPES, named here without torch


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
                            "(constant), dapo (token mean over the generation batch)", choices=list(LOSS_TYPES))
    epsilon: float = option(0.2, "lower clip range epsilon_low")
    epsilon_high: float = option(0.2, "upper clip range (clip-higher: DAPO uses 0.28)")
    importance_sampling_level: str = option("token", "token ratios, or sequence (GSPO, length-normalised)",
                                            choices=["token", "sequence"])
    beta: float = option(0.0, "weight of the k3 KL to the starting model (0 = no reference)", min=0.0)
    num_iterations: int = option(1, "optimiser passes over each generation batch (old log-probs kept)", min=1)
    is_correction: str = option("none", "importance-sampling correction for a sampler that is not the trainer",
                                choices=["none", "token_truncate", "sequence_mask"])
    is_cap: float = option(3.0, "IS cap: token_truncate clamps at it, sequence_mask zeroes outside [1/cap, cap]")
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


@dataclass
class GRPOConfig(RLConfig):
    reward: list[str] = option(["math"], "rewards as NAME[:WEIGHT]: math, format, length, overlong, or "
                               "package.module:function")
    dynamic_sampling: bool = option(False, "DAPO: drop groups whose rewards have zero spread and sample more")
    max_sampling_attempts: int = option(4, "generation rounds per step at most when --dynamic-sampling refills")
    gfpo_keep: int = option(0, "GFPO: keep the k best of --num-generations completions per group (0 = off)", min=0)
    gfpo_metric: str = option("length", "GFPO ranking: shortest first, or highest reward per token",
                              choices=["length", "reward_per_token"])

    def check(self) -> None:
        super().check()
        if self.gfpo_keep and not 2 <= self.gfpo_keep < self.num_generations:
            raise InputError(f"--gfpo-keep must be between 2 and --num-generations - 1 ({self.num_generations - 1}); "
                             f"got {self.gfpo_keep}")
        if not self.reward:
            raise InputError("--reward needs at least one reward")


@dataclass
class Item:
    """One completion to train on: prompt + completion ids, the completion mask, per-token advantages
    and the sampler's log-probs of the completion tokens."""

    example: object  # trainers.render.Example
    adv: np.ndarray  # [completion tokens]
    sampler_logps: np.ndarray  # [completion tokens]


def make_item(prompt_ids: list[int], tokens: list[int], adv: float | np.ndarray, sampler_logps: list[float]) -> Item:
    from trainers.render import Example

    ids = np.asarray(prompt_ids + tokens, dtype=np.int64)
    mask = np.zeros(len(ids), dtype=bool)
    mask[len(prompt_ids):] = True
    adv_t = np.broadcast_to(np.asarray(adv, dtype=np.float64), (len(tokens),)).copy()
    return Item(Example(ids, mask), adv_t, np.asarray(sampler_logps, dtype=np.float64))


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


def train_items(client, items: list[Item], cfg: RLConfig, ref_needed: bool) -> dict:
    """`num_iterations` optimiser passes over `items` (the last pass's step is left to the caller, as
    `train_loop` takes it); returns loss, clip fractions, entropy, KL and the time split."""
    import torch

    from trainers.collate import collate, token_seq_ids
    from trainers.rl_losses import importance_weights, policy_loss

    pad = client.tokenizer.pad_token_id
    items = sorted(items, key=lambda it: len(it.example))  # similar lengths share a padded micro-batch
    micro = [items[i : i + cfg.batch_size] for i in range(0, len(items), cfg.batch_size)]
    batches = []
    for mb in micro:
        batch = collate([it.example for it in mb], "padded", pad)
        batch["temperature"] = cfg.temperature
        batches.append(batch)
    t0 = time.perf_counter()
    need_old = cfg.num_iterations > 1 or cfg.is_correction != "none"
    old = [client.compute_logprobs(b) if need_old else None for b in batches]
    ref = [client.compute_logprobs(b, reference=True) if ref_needed else None for b in batches]
    t_logprobs = time.perf_counter() - t0
    total_tokens = float(sum(len(it.adv) for it in items))
    sums: dict[str, float] = {}
    t0 = time.perf_counter()
    for it_pass in range(cfg.num_iterations):
        loss_total = 0.0
        for mb, batch, old_N, ref_N in zip(micro, batches, old, ref, strict=True):
            seq_N = token_seq_ids(batch)
            adv_N = torch.from_numpy(np.concatenate([it.adv for it in mb])).float()
            sampler_N = torch.from_numpy(np.concatenate([it.sampler_logps for it in mb])).float()

            def loss_fn(logps, _batch, mb=mb, seq_N=seq_N, adv_N=adv_N, old_N=old_N, ref_N=ref_N, sampler_N=sampler_N):
                old_used = logps.detach() if old_N is None else old_N
                rho = None
                if cfg.is_correction != "none":
                    rho = importance_weights(old_used, sampler_N, seq_N, len(mb), cfg.is_correction, cfg.is_cap)
                return policy_loss(logps, old_used, adv_N, seq_N, len(mb), cfg.loss_type, cfg.epsilon,
                                   cfg.epsilon_high, cfg.importance_sampling_level, ref_N, cfg.beta, rho,
                                   grad_accum=len(micro), max_completion_length=cfg.max_new_tokens,
                                   total_tokens=total_tokens)

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


def run_rl(run: RLRun, stage: str, step_fn, log) -> RunResult:
    """Train (or resume) with `step_fn` inside the run directory, save the model, return the manifest."""
    from trainers.loop import run_dir, train_loop, train_usage

    output = Path(run.cfg.output)
    with run_dir(output, stage, run.cfg, 0, inputs=[run.data.source]) as rd:
        last = train_loop(run.client, run.cfg, output, run.total, step_fn, log=log, progress=rd.progress,
                          sampled_tokens=lambda: run.sampled)
        run.client.save_model(output / "model")
        usage = train_usage(run.cfg, int(last.get("trained_tokens_total", 0)), run.sampled, run.prefill)
        return rd.finish(rows_in=run.data.rows_in, rows_out=len(run.prompts), dropped=dict(run.data.dropped),
                         usage=usage, steps=run.total, final=last, model_dir=str(output / "model"))


def train_grpo(cfg: GRPOConfig, log=print) -> RunResult:
    """Run (or resume) GRPO-family training into `cfg.output`; return the manifest."""
    from trainers.rollouts import advantages_for, fill_groups, sample_groups, score_groups

    run = setup_rl(cfg)
    client, prompts, plan = run.client, run.prompts, run.plan
    if cfg.beta:
        client.freeze_reference()
    log(f"grpo: {len(prompts):,} prompts, {run.total} steps x {cfg.num_iterations} pass(es), G={cfg.num_generations}, "
        f"loss {cfg.loss_type}, rewards {', '.join(f'{s.name}:{s.weight:g}' for s in run.specs)}")

    def step_fn(step: int) -> dict:
        t0 = time.perf_counter()
        sampled = 0
        timing = {"rewards": 0.0}

        def draw(attempt: int):
            nonlocal sampled
            if attempt == 0:
                chosen = run.step_prompts(step)
            else:  # refills: a seeded draw, so a resumed run samples the same prompts
                rng = np.random.default_rng([cfg.seed, step, attempt])
                chosen = [prompts[i] for i in rng.choice(len(prompts), size=plan.batch_size, replace=False).tolist()]
            groups = sample_groups(client, chosen, cfg.num_generations, cfg.max_new_tokens, cfg.temperature,
                                   cfg.top_p, cfg.sample_chunk)
            t_r = time.perf_counter()
            score_groups(groups, run.specs, run.tokenizer)
            timing["rewards"] += time.perf_counter() - t_r
            sampled += sum(len(t) for g in groups for t in g.tokens)
            return groups

        groups, stats = fill_groups(draw, plan.batch_size, cfg.dynamic_sampling, cfg.max_sampling_attempts)
        t_gen = time.perf_counter() - t0 - timing["rewards"]
        run.sampled += sampled
        items = []
        if groups:
            for g, adv in zip(groups, advantages_for(groups, cfg.scale_rewards, cfg.gfpo_keep, cfg.gfpo_metric),
                              strict=True):
                for j, tokens in enumerate(g.tokens):
                    if g.keep[j] and tokens and not (cfg.mask_truncated_completions and g.truncated[j]):
                        items.append(make_item(g.prompt_ids, tokens, adv[j], g.sampler_logps[j]))
        record = {**stats, **rollout_metrics(groups, sampled, t_gen), "time/rewards": round(timing["rewards"], 4)}
        record.update(train_items(client, items, cfg, ref_needed=bool(cfg.beta)))
        return {**record, **item_counts(items)}

    return run_rl(run, "train-grpo", step_fn, log)


def run_command(args) -> int:
    from trainers.loop import run_train_command

    return run_train_command(args, GRPOConfig, train_grpo, "reward")
