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

Objectives that replace the clipped surrogate (`loss_type`), each tested against its paper's closed form:
    cispo    MiniMax-M1 (arXiv 2506.13585, eq. 4-5): clip the importance weight, not the update;
             l_t = -sg(min(r_t, cap)) A log pi(o_t), token mean over the generation batch (as dapo).
             The paper's r_hat = clip(r, 1 - eps_low^IS, 1 + eps_high^IS) with no lower bound in practice,
             so cap = 1 + eps_high^IS (TRL and ScaleRL use 4 to 5).
    gvpo     GVPO (arXiv 2504.19599, NeurIPS 2025): per group of k, with D_i = log pi(y_i) - log pi'(y_i)
             summed over y_i's tokens (pi' = the policy that produced the batch's old log-probs):
             L = (1 / P) sum_groups 1/(k-1) sum_i 1/2 [beta (D_i - mean_j D_j) - (R_i - mean_j R_j)]^2
             whose gradient is -beta/(k-1) sum_i w_i grad log pi(y_i), w_i = (R_i - R_bar) - beta (D_i - D_bar):
             no importance ratio, no clip; its unique optimum is pi* ~ pi' exp(R / beta).
    riskpo   RiskPO (arXiv 2510.00911): Mixed Value-at-Risk advantages (`mvar_advantages`) over each group's
             rewards, then the clipped surrogate with the dapo normaliser.

Rollout correction (`importance_weights`) for a generator that is not the trainer (stale weights, other
kernels): rho = pi_old / pi_gen per token or per sequence (product over the sequence's tokens), either
truncated at the cap (tis) or zeroed outside [1/cap, cap] (mis), as open-instruct and verl do.
"""

from __future__ import annotations

import torch

NORMALISERS = ("grpo", "bnpo", "dr_grpo", "dapo")
LOSS_TYPES = (*NORMALISERS, "cispo", "gvpo", "riskpo")
SCALE_REWARDS = ("group", "batch", "none")
IS_LEVELS = ("token", "sequence")
ROLLOUT_CORRECTIONS = ("none", "tis", "mis")
MAX_LOG_RATIO = 20.0  # exp() of a longer sequence's summed log-ratio overflows; the cap decides anyway
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


def importance_weights(old_N: torch.Tensor, gen_N: torch.Tensor, seq_N: torch.Tensor, num_seqs: int,
                       mode: str = "none", level: str = "token", cap: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(rho per token, bool per token: the correction changed this token's weight) for a generator whose
    log-probs `gen_N` differ from the trainer's recomputed `old_N`:
    - tis: rho = min(exp(old - gen), cap)                               (truncated IS)
    - mis: rho = exp(old - gen), set to 0 when outside [1/cap, cap]      (masked IS)
    at `level` token (per-token ratio) or sequence (the product over the sequence's tokens, repeated on
    each token); `none` gives 1 everywhere."""
    if mode not in ROLLOUT_CORRECTIONS:
        raise ValueError(f"unknown rollout correction {mode!r}; expected one of {', '.join(ROLLOUT_CORRECTIONS)}")
    if level not in IS_LEVELS:
        raise ValueError(f"unknown correction level {level!r}; expected one of {', '.join(IS_LEVELS)}")
    diff = old_N - gen_N
    if mode == "none":
        return torch.ones_like(diff), torch.zeros_like(diff, dtype=torch.bool)
    if level == "sequence":
        diff = _per_sequence(diff, seq_N, num_seqs)[seq_N]
    ratio = diff.clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO).exp()
    if mode == "tis":
        return ratio.clamp(max=cap), ratio > cap
    inside = (ratio >= 1 / cap) & (ratio <= cap)
    return torch.where(inside, ratio, torch.zeros_like(ratio)), ~inside


def generator_gap(old_N: torch.Tensor, gen_N: torch.Tensor) -> dict[str, float]:
    """How far the generator's log-probs are from the trainer's on the sampled tokens: mean |old - gen| and
    the k3 estimate of KL(pi_gen || pi_old) = E_gen[exp(old - gen) - (old - gen) - 1] (>= 0 per token)."""
    d = (old_N - gen_N).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
    return {"rollout/logprob_abs_diff": float(d.abs().mean()) if d.numel() else 0.0,
            "rollout/kl_k3": float((d.exp() - d - 1).mean()) if d.numel() else 0.0}


def mvar_advantages(rewards_P_G: torch.Tensor, alpha: float = 0.2, beta: float = 0.8, omega: float = 1.5,
                    scale: str = "group") -> torch.Tensor:
    """RiskPO's Mixed Value-at-Risk advantage per completion (arXiv 2510.00911; the authors' estimator in
    RTkenny/RiskPO `core_algos.py`). With q_a, q_b the group's alpha- and beta-quantiles (linear interpolation):
        A_RVaR  = ((R - q_a)^+ - (R - q_b)^+ + q_a - q_b) / (beta - alpha)   gradient weight of RVaR_[alpha, beta]
        A_CVaR  = -(q_a - R)^+ / alpha                                       gradient weight of CVaR_alpha (lower tail)
        A       = (omega A_CVaR + A_RVaR) / (omega + 1)
    so the objective is MVaR = (omega CVaR_alpha + RVaR_[alpha,beta]) / (1 + omega): the best (1 - beta) of
    the group is ignored and the worst alpha weighs most. `scale` divides by the group std (+1e-4) as GRPO,
    by the batch std, or not at all."""
    if not 0 < alpha < beta <= 1:
        raise ValueError(f"RiskPO needs 0 < alpha < beta <= 1; got alpha={alpha}, beta={beta}")
    q = torch.quantile(rewards_P_G, torch.tensor([alpha, beta], dtype=rewards_P_G.dtype), dim=1, keepdim=True)
    q_a, q_b = q[0], q[1]
    rvar = ((rewards_P_G - q_a).clamp(min=0) - (rewards_P_G - q_b).clamp(min=0) + q_a - q_b) / (beta - alpha)
    cvar = -(q_a - rewards_P_G).clamp(min=0) / alpha
    adv = (omega * cvar + rvar) / (omega + 1)
    if scale == "group":
        return adv / (rewards_P_G.std(dim=1, keepdim=True) + STD_EPS)
    if scale == "batch":
        return adv / (rewards_P_G.std() + STD_EPS)
    return adv


def decoupled_advantages(per_reward_P_G_K: torch.Tensor, weights_K: torch.Tensor) -> torch.Tensor:
    """GDPO (arXiv 2601.05242): normalise each reward within its group, (r_k - mean_G r_k) / (std_G r_k + 1e-4),
    sum with the reward weights, then normalise the sum over the whole batch (A - mean) / (std + 1e-4), so a
    rare behaviour rewarded by one function is not drowned by another's spread. NaN (no verdict) counts 0."""
    r = torch.nan_to_num(per_reward_P_G_K, nan=0.0)
    per = (r - r.mean(dim=1, keepdim=True)) / (r.std(dim=1, keepdim=True) + STD_EPS)
    summed = (per * weights_K).sum(dim=-1)
    return (summed - summed.mean()) / (summed.std() + STD_EPS)


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
    if loss_type in ("dapo", "cispo", "riskpo"):
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
    cispo_cap: float = 5.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped surrogate (module docstring) for one micro-batch, or CISPO's weighted log-likelihood when
    `loss_type` is cispo; `adv_N` is the advantage per token (a sequence's advantage repeated, or per-token
    for distillation). Returns (loss, metrics) with clip fractions (`clip_ratio/low`, `/high`, `/region`:
    token fractions where the clip is active; for cispo, where the weight was capped), the sampled-token
    entropy estimate -mean(logp), and the mean k3 KL when `ref_N` is given. gvpo has its own `gvpo_loss`."""
    if loss_type == "gvpo":
        raise ValueError("gvpo needs whole groups: call gvpo_loss")
    if level not in IS_LEVELS:
        raise ValueError(f"unknown importance_sampling_level {level!r}; expected one of {', '.join(IS_LEVELS)}")
    log_ratio = logps_N - old_N
    if level == "sequence":
        lengths = _per_sequence(torch.ones_like(log_ratio), seq_N, num_seqs).clamp(min=1)
        log_ratio = (_per_sequence(log_ratio, seq_N, num_seqs) / lengths)[seq_N]
    ratio = log_ratio.exp()
    if loss_type == "cispo":
        per_token = -ratio.detach().clamp(max=cispo_cap) * adv_N * logps_N
    else:
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
        if loss_type == "cispo":
            low, high = torch.zeros_like(ratio), (ratio > cispo_cap).float()
        else:
            low = ((ratio < 1 - epsilon_low) & (adv_N < 0)).float()
            high = ((ratio > 1 + epsilon_high) & (adv_N > 0)).float()
        metrics.update({"clip_ratio/low": float(low.mean()), "clip_ratio/high": float(high.mean()),
                        "clip_ratio/region": float((low + high).mean()), "entropy": float(-logps_N.mean()),
                        "tokens": float(logps_N.numel())})
    return loss, metrics


def gvpo_loss(logps_N: torch.Tensor, old_N: torch.Tensor, adv_N: torch.Tensor, seq_N: torch.Tensor, num_seqs: int,
              group_S: torch.Tensor, num_groups: int, beta: float = 0.1, rho_N: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, dict[str, float]]:
    """GVPO's loss (module docstring) over the whole groups of one micro-batch: `group_S` gives each of its
    `num_seqs` sequences a group index (every group complete), `adv_N` carries R_i - R_bar (or any
    zero-sum-per-group advantage) on each token, `num_groups` is P, the generation batch's groups. A
    rollout correction `rho_N` (per token) scales each sequence's term by its mean weight."""
    if num_seqs == 0:
        return logps_N.sum() * 0.0, {"tokens": 0.0}
    d_S = _per_sequence(logps_N - old_N, seq_N, num_seqs)
    adv_S = torch.zeros(num_seqs, dtype=adv_N.dtype, device=adv_N.device).scatter(0, seq_N, adv_N)
    groups, g_S = torch.unique(group_S, return_inverse=True)
    size_G = torch.zeros(len(groups), dtype=d_S.dtype, device=d_S.device).index_add(0, g_S, torch.ones_like(d_S))
    if bool((size_G < 2).any()):
        raise ValueError("gvpo needs at least 2 completions per group in a micro-batch")
    mean_G = torch.zeros_like(size_G).index_add(0, g_S, d_S) / size_G
    resid_S = beta * (d_S - mean_G[g_S]) - adv_S
    per_seq = 0.5 * resid_S**2 / (size_G[g_S] - 1)
    if rho_N is not None:
        lengths = _per_sequence(torch.ones_like(rho_N), seq_N, num_seqs).clamp(min=1)
        per_seq = per_seq * (_per_sequence(rho_N, seq_N, num_seqs) / lengths)
    loss = per_seq.sum() / num_groups
    return loss, {"entropy": float(-logps_N.detach().mean()), "tokens": float(logps_N.numel()),
                  "gvpo/residual": float(resid_S.detach().abs().mean())}
