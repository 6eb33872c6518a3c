"""Rollouts for the GRPO family: sample groups, score them, keep the useful ones, give them advantages.

A step's generation batch is built in three stages, each a small function:
1. `sample_groups`: G completions per prompt with the core's `TrainingClient.sample` (the sampler's
   per-token log-probs kept with the tokens).
2. `fill_groups`: DAPO dynamic sampling: groups whose rewards have zero spread are dropped and more prompts
   are drawn until the batch holds `want` groups or `max_attempts` draws were made.
3. `advantages_for`: group advantages, or GFPO's (keep the k best of G' by length or reward per token,
   advantages over the kept, 0 for the rest, which are then not trained on).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from workbench.errors import SchemaError


@dataclass
class Group:
    """One prompt's sampled completions and their rewards."""

    prompt_ids: list[int]
    row: dict
    tokens: list[list[int]]
    sampler_logps: list[list[float]]
    truncated: list[bool]
    rewards: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [G] weighted total
    per_reward: dict[str, np.ndarray] = field(default_factory=dict)  # name -> [G] raw (NaN = no verdict)
    keep: np.ndarray | None = None  # [G] bool: trained on (GFPO keeps k of G'; otherwise all)
    version: int = -1  # policy version (optimiser steps taken) of the weights that sampled it; -1 = in process


def render_prompt(tokenizer, row: dict, where: str) -> list[int]:
    """Prompt token ids: the chat template with the generation prompt, or plain text without a template."""
    from workbench.records import as_messages

    prompt = row.get("prompt")
    if prompt is None:
        raise SchemaError(f"{where}: \"prompt\" is missing")
    if tokenizer.chat_template is None:
        if not isinstance(prompt, str):
            raise SchemaError(f"{where}: message-list prompts need a tokenizer with a chat template")
        return list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
    out = tokenizer.apply_chat_template(as_messages(prompt, "user", where), tokenize=True, add_generation_prompt=True,
                                        return_dict=True)
    return list(out["input_ids"])


def sample_groups(client, prompts: list[tuple[list[int], dict]], n: int, max_new_tokens: int, temperature: float,
                  top_p: float, chunk: int = 8) -> list[Group]:
    """`n` completions for each (prompt ids, row), sampled `chunk` prompts at a time."""
    groups = [Group(ids, row, [], [], []) for ids, row in prompts]
    for start in range(0, len(prompts), chunk):
        part = prompts[start : start + chunk]
        for s in client.sample([ids for ids, _ in part], n=n, max_new_tokens=max_new_tokens,
                               temperature=temperature, top_p=top_p):
            g = groups[start + s.prompt_index]
            g.tokens.append(s.tokens)
            g.sampler_logps.append(s.logprobs)
            g.truncated.append(not s.tokens or s.tokens[-1] not in client.eos_ids)
    return groups


def score_groups(groups: list[Group], specs, tokenizer) -> None:
    """Fill each group's `rewards` and `per_reward` with one call per reward over all completions."""
    from trainers.rewards import score

    if not groups:
        return
    sizes = [len(g.tokens) for g in groups]
    tokens = [t for g in groups for t in g.tokens]
    texts = tokenizer.batch_decode(tokens, skip_special_tokens=True)
    rows = [g.row for g in groups for _ in g.tokens]
    columns = {k: [r.get(k) for r in rows] for k in rows[0] if k != "prompt"}
    total, per = score(specs, [r["prompt"] for r in rows], texts, tokens, columns)
    bounds = np.cumsum([0, *sizes])
    for i, g in enumerate(groups):
        g.rewards = total[bounds[i] : bounds[i + 1]]
        g.per_reward = {k: v[bounds[i] : bounds[i + 1]] for k, v in per.items()}


def fill_groups(draw: Callable[[int], list[Group]], want: int, dynamic: bool, max_attempts: int) -> tuple[list[Group], dict]:
    """Call `draw(attempt)` (scored groups) until `want` groups are kept; with `dynamic`, groups with zero
    reward spread are dropped and drawing continues for at most `max_attempts` draws (then the batch is
    trained as it is). Returns (kept groups, stats: attempts, drawn, zero-spread count and fraction)."""
    kept: list[Group] = []
    drawn = zero = attempts = 0
    while len(kept) < want and attempts < (max_attempts if dynamic else 1):
        batch = draw(attempts)
        attempts += 1
        for g in batch:
            drawn += 1
            flat = float(np.ptp(g.rewards)) == 0.0
            zero += flat
            if not (dynamic and flat):
                kept.append(g)
    stats = {"sampling/attempts": attempts, "sampling/groups_drawn": drawn,
             "frac_reward_zero_std": zero / max(drawn, 1), "sampling/groups_kept": min(len(kept), want)}
    return kept[:want], stats


def advantages_for(groups: list[Group], scale: str, keep_k: int = 0, metric: str = "length", mode: str = "group",
                   weights: dict[str, float] | None = None, risk: tuple[float, float, float] = (0.2, 0.8, 1.5)
                   ) -> list[np.ndarray]:
    """Per-group advantage arrays [G]; sets each group's `keep`. `mode`:
    - group: GRPO's, from the weighted sum of rewards, scaled by `scale` (group std, batch std or none);
    - per-reward: GDPO's, each reward normalised in its group, summed with `weights`, normalised over the batch;
    - riskpo: RiskPO's Mixed Value-at-Risk advantages, `risk` = (alpha, beta, omega).
    With `keep_k` (GFPO) the k kept completions get advantages computed among themselves and the others get 0
    (and `keep` False, so they are not trained on: GFPO's loss is normalised over the kept completions only)."""
    import torch

    from trainers.rl_losses import (
        decoupled_advantages,
        gfpo_advantages,
        gfpo_keep,
        group_advantages,
        mvar_advantages,
    )

    rewards = torch.tensor(np.stack([g.rewards for g in groups]), dtype=torch.float64)
    keep = torch.ones_like(rewards, dtype=torch.bool)
    if keep_k:
        lengths = torch.tensor([[len(t) for t in g.tokens] for g in groups])
        keep = gfpo_keep(rewards, lengths, keep_k, metric)
        adv = gfpo_advantages(rewards, keep, scale)
    elif mode == "per-reward":
        names = list(groups[0].per_reward)
        per = torch.tensor(np.stack([np.stack([g.per_reward[n] for n in names], axis=-1) for g in groups]),
                           dtype=torch.float64)
        adv = decoupled_advantages(per, torch.tensor([(weights or {}).get(n, 1.0) for n in names], dtype=torch.float64))
    elif mode == "riskpo":
        adv = mvar_advantages(rewards, *risk, scale=scale)
    else:
        adv = group_advantages(rewards, scale)
    for g, k in zip(groups, keep.numpy(), strict=True):
        g.keep = k.astype(bool)
    return list(adv.numpy())
