"""RL losses and advantages on hand-built tensors: each normaliser against its closed form, dapo's
accumulation invariance, GSPO == GRPO on-policy, advantages, KL, IS weights, GFPO and dynamic sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainers.rl_losses import (
    aggregate,
    gfpo_advantages,
    gfpo_keep,
    group_advantages,
    importance_weights,
    opd_advantages,
    policy_loss,
    zero_spread_groups,
)
from trainers.rollouts import Group, fill_groups

LENGTHS = [3, 1, 4, 2]  # completion tokens of 4 sequences
ADV = [1.0, -2.0, 0.5, 3.0]


def _flat(lengths=LENGTHS, adv=ADV, seed=0):
    g = torch.Generator().manual_seed(seed)
    seq = torch.cat([torch.full((n,), i) for i, n in enumerate(lengths)])
    logps = -torch.rand(len(seq), generator=g, dtype=torch.float64) - 0.5
    old = logps + 0.05 * (torch.rand(len(seq), generator=g, dtype=torch.float64) - 0.5)  # |r - 1| < 0.03: no clipping
    adv_n = torch.tensor(adv, dtype=torch.float64)[seq]
    return logps, old, adv_n, seq


def _closed_form(loss_type, logps, old, adv, seq, g=1, lmax=None, total=None):
    """Python loops over sequences and tokens: l_t = -r_t A (no clip active), then the named reduction."""
    per_seq = [[] for _ in LENGTHS]
    for t in range(len(seq)):
        per_seq[int(seq[t])].append(-float(torch.exp(logps[t] - old[t])) * float(adv[t]))
    if loss_type == "grpo":
        return sum(sum(s) / len(s) for s in per_seq) / len(per_seq) / g
    everything = sum(sum(s) for s in per_seq)
    if loss_type == "bnpo":
        return everything / len(seq) / g
    if loss_type == "dr_grpo":
        return everything / (len(per_seq) * lmax) / g
    return everything / total


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
def test_each_normaliser_equals_its_closed_form(loss_type):
    logps, old, adv, seq = _flat()
    loss, m = policy_loss(logps, old, adv, seq, 4, loss_type, grad_accum=2, max_completion_length=16, total_tokens=37)
    assert m["clip_ratio/region"] == 0
    assert loss.item() == pytest.approx(_closed_form(loss_type, logps, old, adv, seq, 2, 16, 37), rel=1e-12)


def _grads(loss_type, splits):
    """Gradient w.r.t. the token log-probs when the 4 sequences are split into micro-batches."""
    logps, old, adv, seq = _flat()
    logps = logps.clone().requires_grad_(True)
    total = float(len(seq))
    for part in splits:
        sel = torch.isin(seq, torch.tensor(part))
        local = torch.unique(seq[sel], return_inverse=True)[1]
        loss, _ = policy_loss(logps[sel], old[sel], adv[sel], local, len(part), loss_type, grad_accum=len(splits),
                              max_completion_length=8, total_tokens=total)
        loss.backward()
    return logps.grad


def test_dapo_is_invariant_to_batch_times_accumulation_and_bnpo_is_not():
    whole = [[0, 1, 2, 3]]
    for split in ([[0, 1], [2, 3]], [[0], [1], [2], [3]], [[0, 2, 3], [1]]):
        assert torch.allclose(_grads("dapo", whole), _grads("dapo", split), atol=1e-12)
    # bnpo's local token mean weights tokens differently when micro-batches hold different token counts
    assert not torch.allclose(_grads("bnpo", whole), _grads("bnpo", [[0, 1], [2, 3]]), atol=1e-6)


def test_gspo_equals_grpo_when_fully_on_policy_and_nothing_is_clipped():
    base, _, adv, seq = _flat()
    results = {}
    for level in ("token", "sequence"):
        logps = base.clone().requires_grad_(True)
        loss, m = policy_loss(logps, logps.detach(), adv, seq, 4, "grpo", 3e-4, 4e-4, level)
        loss.backward()
        results[level] = (loss.item(), logps.grad.clone(), m)
    assert results["token"][0] == pytest.approx(results["sequence"][0], abs=1e-12)
    assert torch.allclose(results["token"][1], results["sequence"][1], atol=1e-12)
    for _, _, m in results.values():
        assert m["clip_ratio/low"] == m["clip_ratio/high"] == m["clip_ratio/region"] == 0


def test_gspo_ratio_is_the_length_normalised_sequence_ratio_and_clip_higher_applies():
    logps = torch.zeros(3, dtype=torch.float64)
    old = torch.tensor([-0.3, -0.3, -0.3], dtype=torch.float64)  # every token ratio e^0.3 = 1.35
    seq = torch.tensor([0, 0, 1])
    adv = torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    loss, m = policy_loss(logps, old, adv, seq, 2, "grpo", 0.2, 0.28, "sequence")
    # seq 0: A>0, ratio 1.35 clipped to 1.28 -> -1.28; seq 1: A<0, min(-1.35, -1.28) = -1.35 -> +1.35
    assert loss.item() == pytest.approx((-1.28 + np.exp(0.3)) / 2, rel=1e-9)
    assert m["clip_ratio/high"] == pytest.approx(2 / 3)
    assert m["clip_ratio/low"] == 0


def test_group_advantages_for_each_scale():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [2.0, 2.0, 2.0, 6.0]], dtype=torch.float64)
    centred = torch.tensor([[0.5, -0.5, -0.5, 0.5], [-1.0, -1.0, -1.0, 3.0]], dtype=torch.float64)
    assert torch.allclose(group_advantages(r, "none"), centred)
    std = torch.tensor([[np.std([1, 0, 0, 1], ddof=1)], [np.std([2, 2, 2, 6], ddof=1)]], dtype=torch.float64)
    assert torch.allclose(group_advantages(r, "group"), centred / (std + 1e-4))
    assert torch.allclose(group_advantages(r, "batch"), centred / (np.std(r.numpy(), ddof=1) + 1e-4))
    assert zero_spread_groups(torch.tensor([[1.0, 1.0], [0.0, 1.0]])).tolist() == [True, False]


def test_k3_kl_is_zero_at_the_reference_and_positive_elsewhere():
    logps, _, adv, seq = _flat()
    _, same = policy_loss(logps, logps, adv, seq, 4, ref_N=logps, beta=0.1)
    _, off = policy_loss(logps, logps, adv, seq, 4, ref_N=logps - 0.3, beta=0.1)
    assert same["kl"] == 0
    assert off["kl"] == pytest.approx(np.exp(-0.3) + 0.3 - 1, rel=1e-9)


def test_importance_weights():
    old = torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64)
    sampler = torch.tensor([-0.1, -2.0, -0.5], dtype=torch.float64)
    seq = torch.tensor([0, 0, 1])
    rho, changed = importance_weights(old, sampler, seq, 2, "none")
    assert rho.tolist() == [1.0, 1.0, 1.0] and not changed.any()
    rho, changed = importance_weights(old, sampler, seq, 2, "tis", "token", 3.0)
    assert torch.allclose(rho, torch.tensor([np.exp(0.1), 3.0, np.exp(0.5)], dtype=torch.float64))
    assert changed.tolist() == [False, True, False]
    # sequence 0: exp(2.1) = 8.2 > cap, masked to 0; sequence 1: exp(0.5) kept
    rho, changed = importance_weights(old, sampler, seq, 2, "mis", "sequence", 3.0)
    assert torch.allclose(rho, torch.tensor([0.0, 0.0, np.exp(0.5)], dtype=torch.float64))
    assert changed.tolist() == [True, True, False]


def test_gfpo_keeps_the_intended_subset_and_zeroes_the_rest():
    rewards = torch.tensor([[1.0, 0.0, 1.0, 0.5, 0.0, 1.0]], dtype=torch.float64)
    lengths = torch.tensor([[10, 3, 8, 2, 7, 20]])
    by_len = gfpo_keep(rewards, lengths, 3, "length")
    assert by_len[0].nonzero().flatten().tolist() == [1, 3, 4]  # the three shortest
    by_rpt = gfpo_keep(rewards, lengths, 3, "reward_per_token")
    assert by_rpt[0].nonzero().flatten().tolist() == [0, 2, 3]  # 0.1, 0.125, 0.25 per token are the best
    adv = gfpo_advantages(rewards, by_rpt, "group")
    assert torch.allclose(adv[0, [0, 2, 3]], group_advantages(rewards[:, [0, 2, 3]], "group")[0])
    assert adv[0, [1, 4, 5]].tolist() == [0.0, 0.0, 0.0]


def _group(rewards):
    return Group([1], {}, [[2]] * len(rewards), [[-1.0]] * len(rewards), [False] * len(rewards), np.array(rewards))


def test_dynamic_sampling_drops_zero_spread_groups_and_refills():
    scripted = [[[1, 1], [0, 1], [0, 0]], [[1, 1], [1, 0]], [[0, 1], [2, 2], [1, 3]]]
    calls = []

    def draw(attempt):
        calls.append(attempt)
        return [_group(r) for r in scripted[attempt]]

    kept, stats = fill_groups(draw, 3, dynamic=True, max_attempts=5)
    assert calls == [0, 1, 2]
    assert [g.rewards.tolist() for g in kept] == [[0, 1], [1, 0], [0, 1]]
    assert stats["frac_reward_zero_std"] == pytest.approx(4 / 8)
    assert stats["sampling/attempts"] == 3 and stats["sampling/groups_drawn"] == 8
    # the bound: two draws only, so the batch is trained short
    calls.clear()
    kept, stats = fill_groups(draw, 3, dynamic=True, max_attempts=2)
    assert calls == [0, 1] and len(kept) == 2
    # without dynamic sampling the first draw is the batch, flat groups included
    kept, stats = fill_groups(draw, 3, dynamic=False, max_attempts=5)
    assert len(kept) == 3 and stats["sampling/attempts"] == 1 and stats["frac_reward_zero_std"] == pytest.approx(2 / 3)


def test_opd_advantage_is_the_negative_reverse_kl_estimate():
    student = torch.tensor([-1.0, -2.0, -0.5])
    assert opd_advantages(student, student).tolist() == [0.0, 0.0, 0.0]
    assert torch.allclose(opd_advantages(torch.tensor([-0.5, -2.5, -0.5]), student, 2.0),
                          torch.tensor([1.0, -1.0, 0.0]))


def test_unknown_names_are_errors():
    x = torch.zeros(2)
    with pytest.raises(ValueError, match="unknown loss_type"):
        aggregate(x, torch.tensor([0, 1]), 2, "mean")
    with pytest.raises(ValueError, match="dr_grpo needs"):
        aggregate(x, torch.tensor([0, 1]), 2, "dr_grpo")
