"""The losses against their closed forms on hand-built tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trainers.losses import dpo_loss, sft_loss, token_logprobs


def test_token_logprobs_match_cross_entropy():
    logits = torch.randn(5, 11)
    targets = torch.tensor([0, 3, 10, 2, 7])
    assert torch.allclose(token_logprobs(logits, targets), -F.cross_entropy(logits, targets, reduction="none"))


def test_sft_loss_divides_by_the_step_token_count():
    logps = torch.tensor([-1.0, -2.0, -3.0])
    loss, metrics = sft_loss(logps, num_tokens=6)
    assert loss.item() == pytest.approx(1.0)
    assert metrics == {"nll_sum": 6.0, "tokens": 3.0}


def _pairs():
    pc, pr = torch.tensor([-10.0, -20.0]), torch.tensor([-12.0, -18.0])
    rc, rr = torch.tensor([-11.0, -19.0]), torch.tensor([-11.0, -19.0])
    lc, lr = torch.tensor([4.0, 5.0]), torch.tensor([2.0, 10.0])
    return pc, pr, rc, rr, lc, lr


def test_sigmoid_is_ln2_when_policy_equals_reference():
    x = torch.tensor([-5.0, -7.0, -3.0])
    loss, m = dpo_loss(x, x + 1, x, x + 1, torch.ones(3), torch.ones(3), "sigmoid", beta=0.1)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-7)
    assert m["rewards/margins"] == 0.0 and m["rewards/accuracies"] == 0.0


@pytest.mark.parametrize("loss_type", ["sigmoid", "hinge", "ipo", "sigmoid_norm", "simpo"])
def test_dpo_losses_match_closed_forms(loss_type):
    pc, pr, rc, rr, lc, lr = _pairs()
    beta, eps, gamma = 0.2, 0.1, 0.3
    h = (pc - rc) - (pr - rr)
    h_avg = (pc - rc) / lc - (pr - rr) / lr
    expected = {
        "sigmoid": -(1 - eps) * F.logsigmoid(beta * h) - eps * F.logsigmoid(-beta * h),
        "hinge": torch.relu(1 - beta * h),
        "ipo": (h_avg - 1 / (2 * beta)) ** 2,
        "sigmoid_norm": -(1 - eps) * F.logsigmoid(beta * h_avg) - eps * F.logsigmoid(-beta * h_avg),
        "simpo": -(1 - eps) * F.logsigmoid(beta * (pc / lc - pr / lr) - gamma)
        - eps * F.logsigmoid(-(beta * (pc / lc - pr / lr) - gamma)),
    }[loss_type].mean()
    ref = (None, None) if loss_type == "simpo" else (rc, rr)
    loss, _ = dpo_loss(pc, pr, *ref, lc, lr, loss_type, beta=beta, label_smoothing=eps, simpo_gamma=gamma)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_dpo_rewards_and_step_normalisation():
    pc, pr, rc, rr, lc, lr = _pairs()
    loss_local, m = dpo_loss(pc, pr, rc, rr, lc, lr, "sigmoid", beta=0.5)
    loss_global, _ = dpo_loss(pc, pr, rc, rr, lc, lr, "sigmoid", beta=0.5, num_pairs=4)
    assert loss_global.item() == pytest.approx(loss_local.item() / 2)
    # rewards = beta * log-ratio: chosen (+0.5, -0.5), rejected (-0.5, +0.5)
    assert m["rewards/chosen"] == pytest.approx(0.0)
    assert m["rewards/margins"] == pytest.approx(0.0)
    assert m["rewards/accuracies"] == 0.5


def test_unknown_loss_and_missing_reference_are_errors():
    x = torch.zeros(1)
    with pytest.raises(ValueError, match="unknown DPO loss"):
        dpo_loss(x, x, x, x, x, x, "nope")
    with pytest.raises(ValueError, match="needs reference"):
        dpo_loss(x, x, None, None, x, x, "sigmoid")
