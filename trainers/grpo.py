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

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainers.config import add_train_arguments
from trainers.rl import (
    NORMALISERS,
    OBJECTIVES,
    Item,
    RLConfig,
    item_counts,
    make_item,
    rollout_metrics,
    run_rl,
    setup_rl,
    train_items,
)
from workbench.config import option
from workbench.errors import InputError
from workbench.rundir import RunResult


@dataclass
class GRPOConfig(RLConfig):
    reward: list[str] = option(["math"], "rewards as NAME[:WEIGHT]: math, format, length, overlong, or "
                               "package.module:function")
    dynamic_sampling: bool = option(False, "DAPO: drop groups whose rewards have zero spread and sample more")
    max_sampling_attempts: int = option(4, "generation rounds per step at most when --dynamic-sampling refills")
    gfpo_keep: int = option(0, "GFPO: keep the k best of --num-generations completions per group (0 = off)", min=0)
    gfpo_metric: str = option("length", "GFPO ranking: shortest first, or highest reward per token",
                              choices=["length", "reward_per_token"])
    loss_type: str = option("dapo", "grpo / bnpo / dr_grpo / dapo (clipped surrogate, by normaliser), cispo (capped "
                            "IS weight on the log-likelihood), gvpo (group-variance objective), riskpo (Mixed "
                            "Value-at-Risk advantages)", choices=[*NORMALISERS, *OBJECTIVES])
    cispo_cap: float = option(5.0, "cispo: upper bound of the stop-gradient importance weight", min=1.0)
    gvpo_beta: float = option(0.1, "gvpo: beta of the KL-regularised objective it solves", min=0.0)
    risk_alpha: float = option(0.2, "riskpo: lower-tail quantile level alpha (CVaR_alpha)", min=0.0, max=1.0)
    risk_beta: float = option(0.8, "riskpo: upper quantile level beta of RVaR_[alpha, beta]", min=0.0, max=1.0)
    risk_omega: float = option(1.5, "riskpo: weight of the lower-tail CVaR in the mix", min=0.0)
    reward_normalization: str = option("group", "group: normalise the weighted sum of rewards in each group; "
                                       "per-reward (GDPO): normalise each reward in its group, sum, then normalise "
                                       "over the batch", choices=["group", "per-reward"])
    generator: str | None = option(None, "OpenAI-compatible generator URL (wb serve --allow-weight-updates); "
                                   "default: the policy samples in this process")
    max_staleness: int = option(0, "with --generator: generation runs up to K steps ahead of training; samples "
                                "more than K policy versions old are dropped (0 = synchronous)", min=0)

    def check(self) -> None:
        super().check()
        if self.loss_type == "riskpo" and not 0 < self.risk_alpha < self.risk_beta <= 1:
            raise InputError(f"--risk-alpha and --risk-beta need 0 < alpha < beta <= 1; got {self.risk_alpha}, "
                             f"{self.risk_beta}")
        if self.gfpo_keep and (self.loss_type in ("gvpo", "riskpo") or self.reward_normalization != "group"):
            raise InputError("--gfpo-keep computes its own advantages over the kept subset; it cannot be combined "
                             "with --loss-type gvpo/riskpo or --reward-normalization per-reward")
        if self.loss_type == "gvpo" and self.mask_truncated_completions:
            raise InputError("--loss-type gvpo needs whole groups; drop --mask-truncated-completions")
        if self.loss_type == "riskpo" and self.reward_normalization != "group":
            raise InputError("--loss-type riskpo computes its own advantages from the summed reward; use "
                             "--reward-normalization group")
        if self.max_staleness and not self.generator:
            raise InputError("--max-staleness needs --generator URL (the in-process policy is always current)")
        if self.generator:
            if not self.generator.startswith(("http://", "https://")):
                raise InputError(f"--generator {self.generator}: expected an http(s):// URL of an "
                                 "OpenAI-compatible server")
            if self.lora_r:
                raise InputError("--generator pushes full weights; LoRA runs are not supported with it yet")
        if self.gfpo_keep and not 2 <= self.gfpo_keep < self.num_generations:
            raise InputError(f"--gfpo-keep must be between 2 and --num-generations - 1 ({self.num_generations - 1}); "
                             f"got {self.gfpo_keep}")
        if not self.reward:
            raise InputError("--reward needs at least one reward")


def grpo_items(groups, cfg: GRPOConfig, specs) -> list[Item]:
    """The completions to train on, with their advantages (by loss type and reward normalisation)."""
    from trainers.rollouts import advantages_for

    if not groups:
        return []
    mode = "riskpo" if cfg.loss_type == "riskpo" else cfg.reward_normalization
    advs = advantages_for(groups, cfg.scale_rewards, cfg.gfpo_keep, cfg.gfpo_metric, mode,
                          {s.name: s.weight for s in specs}, (cfg.risk_alpha, cfg.risk_beta, cfg.risk_omega))
    items = []
    for gi, (g, adv) in enumerate(zip(groups, advs, strict=True)):
        for j, tokens in enumerate(g.tokens):
            if g.keep[j] and tokens and not (cfg.mask_truncated_completions and g.truncated[j]):
                items.append(make_item(g.prompt_ids, tokens, adv[j], g.sampler_logps[j], gi))
    return items


def train_grpo(cfg: GRPOConfig, log=print) -> RunResult:
    """Run (or resume) GRPO-family training into `cfg.output`; return the manifest. With `cfg.generator`
    the rollouts come from that server, up to `cfg.max_staleness` steps ahead (`trainers.async_rollouts`)."""
    from trainers.rollouts import fill_groups, sample_groups, score_groups

    run = setup_rl(cfg)
    client, prompts, plan = run.client, run.prompts, run.plan
    if cfg.beta:
        client.freeze_reference()
    log(f"grpo: {len(prompts):,} prompts, {run.total} steps x {cfg.num_iterations} pass(es), G={cfg.num_generations}, "
        f"loss {cfg.loss_type}, rewards {', '.join(f'{s.name}:{s.weight:g}' for s in run.specs)}"
        + (f", generator {cfg.generator} (max staleness {cfg.max_staleness})" if cfg.generator else ""))
    remote = None
    if cfg.generator:
        from trainers.generator import RemoteGenerator

        if run.tokenizer.chat_template is None:
            raise InputError(f"{cfg.model}: --generator sends chat messages; the tokenizer needs a chat template")
        remote = RemoteGenerator(cfg.generator, run.tokenizer, eos_ids=client.eos_ids)

    def generate(step: int) -> tuple[list, dict]:
        """Sample, score and (with --dynamic-sampling) refill step `step`'s groups; returns them and stats."""
        t0 = time.perf_counter()
        timing = {"rewards": 0.0, "sampled": 0}

        def draw(attempt: int):
            if attempt == 0:
                chosen = run.step_prompts(step)
            else:  # refills: a seeded draw, so a resumed run samples the same prompts
                rng = np.random.default_rng([cfg.seed, step, attempt])
                chosen = [prompts[i] for i in rng.choice(len(prompts), size=plan.batch_size, replace=False).tolist()]
            if remote is not None:
                groups = remote.sample_groups(chosen, cfg.num_generations, cfg.max_new_tokens, cfg.temperature,
                                              cfg.top_p, seed=cfg.seed * 100_003 + step * 101 + attempt)
            else:
                groups = sample_groups(client, chosen, cfg.num_generations, cfg.max_new_tokens, cfg.temperature,
                                       cfg.top_p, cfg.sample_chunk)
            t_r = time.perf_counter()
            score_groups(groups, run.specs, run.tokenizer)
            timing["rewards"] += time.perf_counter() - t_r
            timing["sampled"] += sum(len(t) for g in groups for t in g.tokens)
            return groups

        groups, stats = fill_groups(draw, plan.batch_size, cfg.dynamic_sampling, cfg.max_sampling_attempts)
        stats["time/rewards"] = round(timing["rewards"], 4)
        stats["time/generation"] = round(time.perf_counter() - t0 - timing["rewards"], 4)
        stats["sampled_tokens"] = timing["sampled"]
        return groups, stats

    pipeline = None
    weights = None

    def push(version: int) -> dict:
        """Write the policy's weights and queue their upload; then unlock the steps this version allows."""
        if version >= run.total:  # the last step: nothing left to generate
            return {"policy_version": version}
        t0 = time.perf_counter()
        path = weights.write(client.model, version)
        pipeline.run(lambda: remote.push_weights(path, version))
        pipeline.advance(version)
        return {"time/weight_sync": round(time.perf_counter() - t0, 4), "policy_version": version}

    def step_fn(step: int) -> dict:
        nonlocal pipeline, weights
        async_stats: dict = {}
        if remote is None:
            groups, stats = generate(step)
        else:
            if pipeline is None:  # first step of this process (maybe a resume): the generator gets our weights
                from trainers.async_rollouts import RolloutPipeline
                from trainers.generator import WeightFiles

                weights = WeightFiles(Path(cfg.output) / "generator-weights")
                remote.push_weights(weights.write(client.model, step), step)
                pipeline = RolloutPipeline(generate, step, run.total, cfg.max_staleness)
            (groups, stats), waited = pipeline.get(step)
            groups, async_stats = _drop_stale(groups, step, cfg.max_staleness)
            if not groups:  # everything too old: sample this step again with the current weights
                groups, stats = generate(step)
                groups, again = _drop_stale(groups, step, cfg.max_staleness)
                async_stats["async/dropped_groups"] += again["async/dropped_groups"]
                async_stats["async/resampled"] = 1
                if not groups:
                    raise InputError(f"--generator {cfg.generator}: every rollout for step {step + 1} came from "
                                     f"weights older than version {step - cfg.max_staleness}; is the server "
                                     "receiving weight updates (wb serve --allow-weight-updates)?")
            async_stats["time/generation_wait"] = round(waited, 4)
        sampled = stats.pop("sampled_tokens")
        run.sampled += sampled
        items = grpo_items(groups, cfg, run.specs)
        record = {**stats, **async_stats, **rollout_metrics(groups, sampled, stats["time/generation"])}
        record.update(train_items(client, items, cfg, ref_needed=bool(cfg.beta), remote=remote is not None))
        return {**record, **item_counts(items)}

    try:
        return run_rl(run, "train-grpo", step_fn, log, after_step=push if remote is not None else None)
    finally:
        if pipeline is not None:
            pipeline.close()
        if remote is not None:
            remote.close()


def _drop_stale(groups: list, step: int, max_staleness: int) -> tuple[list, dict]:
    from trainers.async_rollouts import split_stale

    kept, dropped, ages = split_stale(groups, step, max_staleness)
    return kept, {"async/dropped_groups": len(dropped), "async/staleness_mean": float(np.mean(ages)) if ages else 0.0,
                  "async/staleness_max": int(max(ages)) if ages else 0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`wb train grpo`: `--config` and one flag per GRPOConfig field."""
    add_train_arguments(parser, GRPOConfig)


def run(args: argparse.Namespace) -> int:
    from trainers.loop import run_train_command

    return run_train_command(args, GRPOConfig, train_grpo, "reward")
