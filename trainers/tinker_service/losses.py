"""Tinker's built-in losses over one datum's per-token log-probs; every loss is a sum, as in Tinker.

Each function takes the target log-probs `logp_T` (with gradient), the datum's `loss_fn_inputs` as tensors
and `loss_fn_config`, and returns the per-token loss `[T]` whose sum is backpropagated. Notation:
q = the sampler's log-probs (`logprobs` input), A = `advantages`, r = exp(logp - q).

    cross_entropy        -w * logp                                         (w = `weights`, default 1)
    importance_sampling  -r * A
    ppo                  -min(r A, clip(r, lo, hi) A)                      lo, hi default 0.8, 1.2
    cispo                -sg(clip(r, lo, hi)) * logp * A                   lo, hi default 0.0, 4.0
    dro                  -(logp A - beta/2 (logp - q)^2)                   beta from loss_fn_config

`lo`/`hi` come from `loss_fn_config` (`clip_low_threshold`, `clip_high_threshold`) or per token from the
datum's inputs of the same names. Other names (`stable_reinforce`, `gspo`, `custom`) are refused.
"""

from __future__ import annotations

import torch

from trainers.tinker_service.protocol import RequestError, show

LOSSES = ("cross_entropy", "importance_sampling", "ppo", "cispo", "dro")
_CLIP_DEFAULTS = {"ppo": (0.8, 1.2), "cispo": (0.0, 4.0)}
_RL_INPUTS = ("target_tokens", "logprobs", "advantages")


def check_loss(loss_fn: str, config: dict, inputs_list: list[dict]) -> None:
    """Raise RequestError for an unknown loss, a missing input or config value, or mismatched lengths."""
    if loss_fn not in LOSSES:
        hint = " (it needs server-side state; use importance_sampling or ppo)" if loss_fn == "stable_reinforce" else ""
        raise RequestError(f"loss_fn {show(loss_fn)} is not supported{hint}; supported: {', '.join(LOSSES)}")
    needed = ("target_tokens",) if loss_fn == "cross_entropy" else _RL_INPUTS
    for i, inputs in enumerate(inputs_list):
        for name in needed:
            if name not in inputs:
                raise RequestError(f"datum {i}: loss {loss_fn} needs loss_fn_inputs[{name!r}]")
    for key in ("clip_low_threshold", "clip_high_threshold", "beta"):
        if key in config and not isinstance(config[key], float):
            raise RequestError(f"loss_fn_config[{key!r}] must be a number")
    if loss_fn == "dro" and not isinstance(config.get("beta"), float):
        raise RequestError("loss dro needs loss_fn_config['beta'] (the weight of the quadratic penalty)")


def _clip(loss_fn: str, config: dict, inputs: dict, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    lo, hi = _CLIP_DEFAULTS[loss_fn]
    low = inputs.get("clip_low_threshold", torch.full_like(like, float(config.get("clip_low_threshold", lo))))
    high = inputs.get("clip_high_threshold", torch.full_like(like, float(config.get("clip_high_threshold", hi))))
    return low.to(like), high.to(like)


def per_token_loss(loss_fn: str, logp_T: torch.Tensor, inputs: dict[str, torch.Tensor], config: dict) -> torch.Tensor:
    """The per-token loss of one datum (module docstring); its sum is the datum's loss."""
    if loss_fn == "cross_entropy":
        weights = inputs.get("weights")
        return -logp_T * (weights.to(logp_T) if weights is not None else 1.0)
    q = inputs["logprobs"].to(logp_T)
    adv = inputs["advantages"].to(logp_T)
    if loss_fn == "importance_sampling":
        return -torch.exp(logp_T - q) * adv
    if loss_fn == "dro":
        return -(logp_T * adv - 0.5 * float(config["beta"]) * (logp_T - q) ** 2)
    ratio = torch.exp(logp_T - q)
    low, high = _clip(loss_fn, config, inputs, ratio)
    clipped = torch.maximum(torch.minimum(ratio, high), low)
    if loss_fn == "ppo":
        return -torch.minimum(ratio * adv, clipped * adv)
    return -clipped.detach() * logp_T * adv  # cispo
