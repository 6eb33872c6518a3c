"""Losses as pure tensor functions: token log-probs in, a scalar loss and metrics out.

Every loss here takes tensors (no model, no batch objects), says its formula and how it is normalised,
and returns `(loss, metrics)` where `metrics` maps names to detached scalars. To add a loss, write one
more function with the same shape and pass it to `TrainingClient.forward_backward`.

Notation: logp(y|x) = sum over completion tokens of log pi(y_t | x, y_<t); |y| = completion tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trainers.config import DPO_LOSSES


def token_logprobs(logits_N_V: torch.Tensor, targets_N: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[target] per position, in fp32 (so bf16 logits do not lose the tail)."""
    logits = logits_N_V.float()
    return logits.gather(-1, targets_N.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def sft_loss(logps_N: torch.Tensor, num_tokens: int | float) -> tuple[torch.Tensor, dict[str, float]]:
    """Negative log-likelihood of the trained tokens, as a token mean over the whole optimiser step.

    L = -(1/N) * sum_t logp(y_t), where the sum runs over this micro-batch's trained tokens and N is the
    number of trained tokens in the whole step (all micro-batches of the accumulation, all ranks). Dividing
    by the global N, not the micro-batch's own count, makes the gradient independent of how the step is
    split into micro-batches: batch 4 x accumulation 1 equals batch 2 x accumulation 2.
    """
    total = -logps_N.sum()
    return total / num_tokens, {"nll_sum": float(total.detach()), "tokens": float(logps_N.numel())}


def dpo_loss(
    policy_chosen_S: torch.Tensor,
    policy_rejected_S: torch.Tensor,
    ref_chosen_S: torch.Tensor | None,
    ref_rejected_S: torch.Tensor | None,
    chosen_len_S: torch.Tensor,
    rejected_len_S: torch.Tensor,
    loss_type: str = "sigmoid",
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    simpo_gamma: float = 0.5,
    num_pairs: int | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """A pairwise preference loss over S pairs of summed completion log-probs; mean over pairs.

    With h = [logp_pi(y_w) - logp_ref(y_w)] - [logp_pi(y_l) - logp_ref(y_l)] (sums over tokens) and
    h_avg the same with each log-prob divided by its completion length:
    - sigmoid (DPO):      -(1-e) log s(b h) - e log s(-b h)        (e = label smoothing; cDPO)
    - hinge (SLiC):       max(0, 1 - b h)
    - ipo:                (h_avg - 1/(2b))^2                         (IPO uses length-averaged ratios)
    - sigmoid_norm:       -(1-e) log s(b h_avg) - e log s(-b h_avg)  (length-normalised DPO, as in the
                          delta-learning / Tulu 3 `dpo_norm` recipe)
    - simpo (no reference): with m = b (logp_pi(y_w)/|y_w| - logp_pi(y_l)/|y_l|) - gamma,
                          -(1-e) log s(m) - e log s(-m)
    The loss is a mean over pairs; `num_pairs` (the pairs in the whole optimiser step) replaces the local
    count so gradient accumulation gives the same gradient as one large batch. At initialisation the policy
    equals the reference, h = 0 and the sigmoid loss is ln 2.

    Logged rewards are b times the (length-averaged, for ipo/sigmoid_norm/simpo) log-ratio against the
    reference (against zero for simpo); margins = chosen - rejected; accuracies = mean(chosen > rejected).
    """
    if loss_type not in DPO_LOSSES:
        raise ValueError(f"unknown DPO loss {loss_type!r}; expected one of {', '.join(DPO_LOSSES)}")
    normalise = loss_type in ("ipo", "sigmoid_norm", "simpo")
    chosen, rejected = policy_chosen_S.float(), policy_rejected_S.float()
    if loss_type != "simpo":
        if ref_chosen_S is None or ref_rejected_S is None:
            raise ValueError(f"the {loss_type} loss needs reference log-probs")
        chosen = chosen - ref_chosen_S.float()
        rejected = rejected - ref_rejected_S.float()
    if normalise:
        chosen = chosen / chosen_len_S.clamp(min=1)
        rejected = rejected / rejected_len_S.clamp(min=1)
    h = chosen - rejected
    if loss_type == "sigmoid" or loss_type == "sigmoid_norm":
        losses = -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * h)
    elif loss_type == "ipo":
        losses = (h - 1 / (2 * beta)) ** 2
    else:  # simpo
        m = beta * h - simpo_gamma
        losses = -(1 - label_smoothing) * F.logsigmoid(m) - label_smoothing * F.logsigmoid(-m)
    loss = losses.sum() / (num_pairs or losses.numel())
    reward_chosen, reward_rejected = (beta * chosen).detach(), (beta * rejected).detach()
    metrics = {
        "rewards/chosen": float(reward_chosen.mean()),
        "rewards/rejected": float(reward_rejected.mean()),
        "rewards/margins": float((reward_chosen - reward_rejected).mean()),
        "rewards/accuracies": float((reward_chosen > reward_rejected).float().mean()),
        "logps/chosen": float(policy_chosen_S.detach().float().mean()),
        "logps/rejected": float(policy_rejected_S.detach().float().mean()),
    }
    return loss, metrics


def rpo_nll(policy_chosen_S: torch.Tensor, chosen_tokens: int | float) -> torch.Tensor:
    """The NLL term of RPO (TRL's `rpo_alpha`): -sum of chosen log-probs / chosen completion tokens.

    Divided by the chosen tokens of the whole optimiser step (all micro-batches), so with accumulation it is
    TRL's token-mean cross-entropy on the chosen answers of one large batch. Added as
    `loss + rpo_alpha * nll`, it keeps the chosen answer's likelihood from falling with the rejected one.
    """
    return -policy_chosen_S.float().sum() / max(float(chosen_tokens), 1.0)
