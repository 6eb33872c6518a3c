"""CISPO, GVPO and RiskPO, GDPO's decoupled reward normalisation and the rollout corrections, each against
its paper's closed form written out with Python loops on hand-built tensors."""

from __future__ import annotations

import math

import pytest
import torch

from trainers.rl_losses import (
    decoupled_advantages,
    generator_gap,
    gvpo_loss,
    importance_weights,
    mvar_advantages,
    policy_loss,
)

LENGTHS = [3, 1, 4, 2]


def _tokens(seed=0, spread=1.5):
    g = torch.Generator().manual_seed(seed)
    seq = torch.cat([torch.full((n,), i) for i, n in enumerate(LENGTHS)])
    logps = (-torch.rand(len(seq), generator=g, dtype=torch.float64) - 0.5).requires_grad_(True)
    old = logps.detach() + spread * (torch.rand(len(seq), generator=g, dtype=torch.float64) - 0.5)
    return logps, old, seq


def test_cispo_weights_the_log_likelihood_by_the_capped_ratio_and_never_zeroes_a_token():
    logps, old, seq = _tokens(spread=4.0)  # ratios from about e^-2 to e^2: some above the cap
    adv = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)[seq]
    cap, total = 1.5, 25.0
    loss, m = policy_loss(logps, old, adv, seq, 4, "cispo", total_tokens=total, cispo_cap=cap)
    loss.backward()
    expected, grads, capped = 0.0, [], 0
    for t in range(len(seq)):  # MiniMax-M1 eq. 4: -sg(min(r, cap)) A log pi, summed, / total tokens
        r = math.exp(float(logps[t].detach()) - float(old[t]))
        w = min(r, cap)
        capped += r > cap
        expected += -w * float(adv[t]) * float(logps[t].detach()) / total
        grads.append(-w * float(adv[t]) / total)
    assert 0 < capped < len(seq)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert logps.grad.tolist() == pytest.approx(grads, rel=1e-12)  # every token keeps a gradient (no clip to 0)
    assert m["clip_ratio/high"] == pytest.approx(capped / len(seq))


def test_gvpo_equals_the_group_variance_form_and_its_gradient_weights():
    # two groups of two sequences: seqs 0,1 -> group 0; seqs 2,3 -> group 1
    logps, old, seq = _tokens(spread=1.0)
    rewards = [1.0, 0.0, 0.2, 0.8]
    group = torch.tensor([0, 0, 1, 1])
    r_bar = {0: 0.5, 1: 0.5}
    adv = torch.tensor([rewards[i] - r_bar[int(group[i])] for i in range(4)], dtype=torch.float64)[seq]
    beta, num_groups = 0.3, 5
    loss, _ = gvpo_loss(logps, old, adv, seq, 4, group, num_groups, beta)
    loss.backward()
    d = [sum(float(logps[t].detach() - old[t]) for t in range(len(seq)) if int(seq[t]) == i) for i in range(4)]
    expected, weight = 0.0, {}
    for g, members in ((0, [0, 1]), (1, [2, 3])):
        k = len(members)
        d_bar = sum(d[i] for i in members) / k
        for i in members:
            w = (rewards[i] - r_bar[g]) - beta * (d[i] - d_bar)  # GVPO's gradient weight
            weight[i] = w
            expected += 0.5 * w**2 / (k - 1) / num_groups
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    # d loss / d log pi(token of y_i) = -beta w_i / ((k - 1) P): the policy-gradient form of the paper
    want = [-beta * weight[int(seq[t])] / (2 - 1) / num_groups for t in range(len(seq))]
    assert logps.grad.tolist() == pytest.approx(want, rel=1e-10)


def test_gvpo_refuses_a_split_group():
    logps, old, seq = _tokens()
    adv = torch.zeros(len(seq), dtype=torch.float64)
    with pytest.raises(ValueError, match="at least 2"):
        gvpo_loss(logps, old, adv, seq, 4, torch.tensor([0, 0, 1, 2]), 3)


def _quantile(values, q):
    """numpy/torch 'linear' quantile written out."""
    v = sorted(values)
    pos = q * (len(v) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (pos - lo) * (v[hi] - v[lo])


@pytest.mark.parametrize("scale", ["group", "none"])
def test_riskpo_mvar_advantages_match_the_closed_form(scale):
    groups = [[0.0, 0.0, 1.0, 1.0, 1.0], [0.1, 0.9, 0.4, 0.3, 0.7]]
    alpha, beta, omega = 0.2, 0.8, 1.5
    adv = mvar_advantages(torch.tensor(groups, dtype=torch.float64), alpha, beta, omega, scale)
    for p, rewards in enumerate(groups):
        qa, qb = _quantile(rewards, alpha), _quantile(rewards, beta)
        mean = sum(rewards) / len(rewards)
        std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / (len(rewards) - 1))
        for i, r in enumerate(rewards):
            rvar = (max(r - qa, 0) - max(r - qb, 0) + qa - qb) / (beta - alpha)
            cvar = -max(qa - r, 0) / alpha
            a = (omega * cvar + rvar) / (omega + 1)
            if scale == "group":
                a /= std + 1e-4
            assert adv[p, i].item() == pytest.approx(a, rel=1e-12, abs=1e-12)
    # the lower tail weighs most: the worst completion of group 1 gets the most negative advantage
    assert int(adv[1].argmin()) == 0


def test_riskpo_rejects_bad_risk_levels():
    with pytest.raises(ValueError, match="alpha"):
        mvar_advantages(torch.zeros(1, 4), 0.8, 0.2)


def test_gdpo_normalises_each_reward_in_its_group_then_the_batch():
    # rewards [P=2, G=3, K=2]: correctness in {0,1}, a format reward with a small spread
    r = torch.tensor([[[1.0, 0.10], [0.0, 0.20], [0.0, 0.30]],
                      [[1.0, 0.00], [1.0, 0.05], [0.0, float("nan")]]], dtype=torch.float64)
    w = torch.tensor([1.0, 0.5], dtype=torch.float64)
    got = decoupled_advantages(r, w)
    summed = []
    for p in range(2):
        per_k = []
        for k in range(2):
            vals = [0.0 if math.isnan(float(r[p, i, k])) else float(r[p, i, k]) for i in range(3)]
            m = sum(vals) / 3
            s = math.sqrt(sum((v - m) ** 2 for v in vals) / 2)
            per_k.append([(v - m) / (s + 1e-4) for v in vals])
        summed += [sum(float(w[k]) * per_k[k][i] for k in range(2)) for i in range(3)]
    m = sum(summed) / 6
    s = math.sqrt(sum((v - m) ** 2 for v in summed) / 5)
    assert got.flatten().tolist() == pytest.approx([(v - m) / (s + 1e-4) for v in summed], rel=1e-12)
    # the format reward still separates completions that one summed-then-normalised scalar would tie
    assert got[0, 1] != got[0, 2]


def test_sequence_level_tis_truncates_the_product_of_ratios():
    old = torch.tensor([0.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    gen = torch.tensor([-0.3, -0.4, 0.2, -0.1], dtype=torch.float64)
    seq = torch.tensor([0, 0, 1, 1])
    rho, changed = importance_weights(old, gen, seq, 2, "tis", "sequence", 2.0)
    assert rho.tolist() == pytest.approx([2.0, 2.0, math.exp(-0.1), math.exp(-0.1)])  # e^0.7 = 2.01 > 2
    assert changed.tolist() == [True, True, False, False]
    rho, changed = importance_weights(old, gen, seq, 2, "mis", "token", 1.4)
    assert rho.tolist() == pytest.approx([math.exp(0.3), 0.0, math.exp(-0.2), math.exp(0.1)])
    assert changed.tolist() == [False, True, False, False]


def test_generator_gap_reports_mean_abs_diff_and_k3():
    old = torch.tensor([-1.0, -2.0], dtype=torch.float64)
    gen = torch.tensor([-1.5, -1.0], dtype=torch.float64)
    gap = generator_gap(old, gen)
    assert gap["rollout/logprob_abs_diff"] == pytest.approx(0.75)
    k3 = [math.exp(d) - d - 1 for d in (0.5, -1.0)]
    assert gap["rollout/kl_k3"] == pytest.approx(sum(k3) / 2)
