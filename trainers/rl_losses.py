"""RL losses and advantages as pure tensor functions: the GRPO family and on-policy distillation.

Tokens arrive flat, as `TrainingClient.forward_backward` gives them: `logps_N` holds the log-probs of the
N completion tokens of a micro-batch and `seq_N` says which of its S sequences each token belongs to.
Notation: r_t = exp(logp_t - old_t) (the ratio to the policy that sampled, or to the policy before this
generation batch's first pass), A the advantage, m the completion mask, |o_i| the tokens of sequence i,
g the micro-batches accumulated into one optimiser step.

Per-token term (TRL's `_compute_loss`):
    l_t = -min(r_t A, clip(r_t, 1 - eps_low, 1 + eps_high) A) * rho + beta * (exp(ref_t - logp_t) - (ref_t - logp_t) - 1)
with rho the importance-sampling correction for a sampler that is not the trainer (1 otherwise) and the
last term the k3 estimator of KL(pi || ref). GSPO (`level="sequence"`) replaces r_t by the sequence's
length-normalised ratio s_i = exp(sum_t m (logp_t - old_t) / |o_i|), clipped the same way.

Normalisation (`loss_type`), which is where the variants really differ:
    grpo     (1/S) sum_i [sum_t l_{i,t} / |o_i|] / g          mean per sequence, then over sequences
    bnpo     sum l / sum m over this micro-batch / g          token mean of the micro-batch
    dr_grpo  sum l / (S * max_completion_length) / g          a constant denominator
    dapo     sum l / N_gen                                    N_gen = completion tokens of the whole
                                                              generation batch: invariant to how it is split
"""

from __future__ import annotations

import torch

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
SCALE_REWARDS = ("group", "batch", "none")
IS_LEVELS = ("token", "sequence")
IS_CORRECTIONS = ("none", "token_truncate", "sequence_mask")
GFPO_METRICS = ("length", "reward_per_token")
STD_EPS = 1e-4


def group_advantages(rewards_P_G: torch.Tensor, scale: str = "group") -> torch.Tensor:
    """A = R - mean over the group, divided by the group's std (`group`, GRPO), the whole batch's std
    (`batch`, Lite-PPO) or nothing (`none`, Dr. GRPO); stds are unbiased and get +1e-4, as in TRL."""
    if scale not in SCALE_REWARDS:
        raise ValueError(f"unknown scale_rewards {scale!r}; expected one of {', '.join(SCALE_REWARDS)}")
    centred = rewards_P_G - rewards_P_G.mean(dim=1, keepdim=True)
    if scale == "group":
        return centred / (rewards_P_G.std(dim=1, keepdim=True) + STD_EPS)
    if scale == "batch":
        return centred / (rewards_P_G.std() + STD_EPS)
    return centred


def zero_spread_groups(rewards_P_G: torch.Tensor) -> torch.Tensor:
    """Boolean [P]: groups whose rewards are all equal (zero advantage, no learning signal)."""
    return (rewards_P_G.max(dim=1).values - rewards_P_G.min(dim=1).values) == 0


def gfpo_keep(rewards_P_G: torch.Tensor, lengths_P_G: torch.Tensor, k: int, metric: str = "length") -> torch.Tensor:
    """Boolean [P, G']: GFPO's kept subset, the k shortest completions of each group (`length`) or the k
    with the highest reward per token (`reward_per_token`); ties go to the earlier sample."""
    if metric not in GFPO_METRICS:
        raise ValueError(f"unknown GFPO metric {metric!r}; expected one of {', '.join(GFPO_METRICS)}")
    score = -lengths_P_G.float() if metric == "length" else rewards_P_G / lengths_P_G.clamp(min=1).float()
    order = torch.sort(-score, dim=1, stable=True).indices[:, :k]
    return torch.zeros_like(rewards_P_G, dtype=torch.bool).scatter(1, order, True)


def gfpo_advantages(rewards_P_G: torch.Tensor, keep_P_G: torch.Tensor, scale: str = "group") -> torch.Tensor:
    """Advantages computed over the kept completions only (k per group); 0 for the rest."""
    k = int(keep_P_G[0].sum())
    kept = rewards_P_G[keep_P_G].view(-1, k)
    out = torch.zeros_like(rewards_P_G)
    out[keep_P_G] = group_advantages(kept, scale).flatten()
    return out


def opd_advantages(teacher_N: torch.Tensor, student_N: torch.Tensor, coef: float = 1.0) -> torch.Tensor:
    """Per-token on-policy distillation advantage: coef * (log p_teacher(y_t) - log p_student(y_t)), the
    negative of a one-sample estimate of the reverse KL(student || teacher) at that token."""
    return coef * (teacher_N - student_N)


def importance_weights(old_N: torch.Tensor, sampler_N: torch.Tensor, seq_N: torch.Tensor, num_seqs: int,
                       mode: str = "none", cap: float = 3.0) -> torch.Tensor:
    """rho per token, correcting for a sampler that is not the trainer (old = trainer's log-probs before the
    update, sampler = what the generator reported):
    - token_truncate: rho_t = min(exp(old_t - sampler_t), cap)                (truncated IS, TIS)
    - sequence_mask:  rho_i = exp(sum_t (old_t - sampler_t)), set to 0 when outside [1/cap, cap]
    - none: 1."""
    if mode not in IS_CORRECTIONS:
        raise ValueError(f"unknown IS correction {mode!r}; expected one of {', '.join(IS_CORRECTIONS)}")
    diff = old_N - sampler_N
    if mode == "none":
        return torch.ones_like(diff)
    if mode == "token_truncate":
        return diff.exp().clamp(max=cap)
    seq = torch.zeros(num_seqs, dtype=diff.dtype, device=diff.device).index_add(0, seq_N, diff).exp()
    seq = torch.where((seq >= 1 / cap) & (seq <= cap), seq, torch.zeros_like(seq))
    return seq[seq_N]


def _per_sequence(values_N: torch.Tensor, seq_N: torch.Tensor, num_seqs: int) -> torch.Tensor:
    return torch.zeros(num_seqs, dtype=values_N.dtype, device=values_N.device).index_add(0, seq_N, values_N)


def aggregate(per_token_N: torch.Tensor, seq_N: torch.Tensor, num_seqs: int, loss_type: str, grad_accum: int = 1,
              max_completion_length: int | None = None, total_tokens: float | None = None) -> torch.Tensor:
    """Reduce per-token losses to the micro-batch's share of the step loss, by `loss_type` (module docstring).
    `total_tokens` is dapo's N_gen (default: this micro-batch's tokens, i.e. a single micro-batch)."""
    if loss_type == "grpo":
        lengths = _per_sequence(torch.ones_like(per_token_N), seq_N, num_seqs).clamp(min=1)
        return (_per_sequence(per_token_N, seq_N, num_seqs) / lengths).sum() / num_seqs / grad_accum
    if loss_type == "bnpo":
        return per_token_N.sum() / max(per_token_N.numel(), 1) / grad_accum
    if loss_type == "dr_grpo":
        if not max_completion_length:
            raise ValueError("dr_grpo needs max_completion_length (its constant denominator)")
        return per_token_N.sum() / (num_seqs * max_completion_length) / grad_accum
    if loss_type == "dapo":
        return per_token_N.sum() / (total_tokens or max(per_token_N.numel(), 1))
    raise ValueError(f"unknown loss_type {loss_type!r}; expected one of {', '.join(LOSS_TYPES)}")


def policy_loss(
    logps_N: torch.Tensor,
    old_N: torch.Tensor,
    adv_N: torch.Tensor,
    seq_N: torch.Tensor,
    num_seqs: int,
    loss_type: str = "dapo",
    epsilon_low: float = 0.2,
    epsilon_high: float = 0.2,
    level: str = "token",
    ref_N: torch.Tensor | None = None,
    beta: float = 0.0,
    rho_N: torch.Tensor | None = None,
    grad_accum: int = 1,
    max_completion_length: int | None = None,
    total_tokens: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped surrogate (module docstring) for one micro-batch; `adv_N` is the advantage per token
    (a sequence's advantage repeated, or per-token for distillation). Returns (loss, metrics) with clip
    fractions (`clip_ratio/low`, `/high`, `/region`: token fractions where the clip is active), the
    sampled-token entropy estimate -mean(logp), and the mean k3 KL when `ref_N` is given."""
    if level not in IS_LEVELS:
        raise ValueError(f"unknown importance_sampling_level {level!r}; expected one of {', '.join(IS_LEVELS)}")
    log_ratio = logps_N - old_N
    if level == "sequence":
        lengths = _per_sequence(torch.ones_like(log_ratio), seq_N, num_seqs).clamp(min=1)
        log_ratio = (_per_sequence(log_ratio, seq_N, num_seqs) / lengths)[seq_N]
    ratio = log_ratio.exp()
    clipped = ratio.clamp(1 - epsilon_low, 1 + epsilon_high)
    per_token = -torch.min(ratio * adv_N, clipped * adv_N)
    if rho_N is not None:
        per_token = per_token * rho_N
    metrics: dict[str, float] = {}
    if ref_N is not None and beta:
        delta = ref_N - logps_N
        kl = delta.exp() - delta - 1
        per_token = per_token + beta * kl
        metrics["kl"] = float(kl.detach().mean())
    loss = aggregate(per_token, seq_N, num_seqs, loss_type, grad_accum, max_completion_length, total_tokens)
    with torch.no_grad():
        low = ((ratio < 1 - epsilon_low) & (adv_N < 0)).float()
        high = ((ratio > 1 + epsilon_high) & (adv_N > 0)).float()
        metrics.update({"clip_ratio/low": float(low.mean()), "clip_ratio/high": float(high.mean()),
                        "clip_ratio/region": float((low + high).mean()), "entropy": float(-logps_N.mean()),
                        "tokens": float(logps_N.numel())})
    return loss, metrics
