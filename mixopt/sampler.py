"""The RegMix mixture sampler, shared by `wb mix plan` (proxy mixtures) and `wb mix search` (candidates).

Each candidate draws a strength s log-uniformly from [0.1, 5.0] and weights w ~ Dirichlet(prior * s),
where prior is the natural token distribution raised to a temperature and renormalised. Candidates that
break a constraint (per-domain min/max weight, or more than `max_epochs` passes over a domain's tokens
at the run's token budget) are rejected; tiny weights are zeroed. RegMix's own search dropped the
epoch bound and used another prior; here one `Constraints` object serves both, so they agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from workbench.errors import InputError

MIN_NONZERO = 2e-4  # RegMix zeroes weights below this


@dataclass
class Constraints:
    """Limits every sampled mixture must meet; weights are per domain, in plan order."""

    domains: list[str]
    min_weight: dict[str, float] = field(default_factory=dict)
    max_weight: dict[str, float] = field(default_factory=dict)
    max_epochs: float | None = None
    available_tokens: dict[str, int] = field(default_factory=dict)
    tokens_per_run: int | None = None

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-domain (low, high) weight bounds, the epoch cap folded into high."""
        low = np.array([self.min_weight.get(d, 0.0) for d in self.domains])
        high = np.array([self.max_weight.get(d, 1.0) for d in self.domains])
        if self.max_epochs and self.tokens_per_run:
            caps = np.array([self.max_epochs * self.available_tokens.get(d, 0) / self.tokens_per_run
                             for d in self.domains])
            high = np.minimum(high, caps)
        return low, high

    def check_feasible(self) -> None:
        """Raise `InputError` when no mixture can meet the constraints, naming the reason."""
        low, high = self.bounds()
        for name, lo, hi in zip(self.domains, low, high, strict=True):
            if lo > hi + 1e-12:
                raise InputError(f"domain {name!r}: minimum weight {lo:.4f} exceeds its maximum {hi:.4f} "
                                 "(max_weight, or max_epochs x its tokens / tokens per run)")
        if low.sum() > 1 + 1e-9:
            raise InputError(f"the minimum weights add up to {low.sum():.3f} > 1; no mixture can meet them")
        if high.sum() < 1 - 1e-9:
            raise InputError(f"the maximum weights (with the epoch caps) add up to {high.sum():.3f} < 1; "
                             "add tokens, lower tokens per run, or raise max_epochs/max_weight")

    def satisfied(self, weights: np.ndarray) -> np.ndarray:
        low, high = self.bounds()
        return np.all((weights >= low - 1e-9) & (weights <= high + 1e-9), axis=-1)


def natural_prior(tokens: dict[str, int], domains: list[str]) -> np.ndarray:
    counts = np.array([tokens[d] for d in domains], dtype=float)
    return counts / counts.sum()


def _dirichlet_draws(alpha: np.ndarray, size: int, rng: np.random.Generator,
                     strengths: tuple[float, float] = (0.1, 5.0)) -> np.ndarray:
    """`size` draws of Dirichlet(alpha * s), s log-uniform in `strengths` per draw."""
    s = np.exp(rng.uniform(np.log(strengths[0]), np.log(strengths[1]), size=(size, 1)))
    w = rng.gamma(np.maximum(alpha * s, 1e-6))
    return w / w.sum(axis=1, keepdims=True)


def sample_mixtures(prior: np.ndarray, n: int, constraints: Constraints, rng: np.random.Generator,
                    temperature: float = 0.5, strengths: tuple[float, float] = (0.1, 5.0),
                    max_draws: int | None = None) -> np.ndarray:
    """Draw `n` distinct mixtures (rows summing to 1) that satisfy `constraints`.

    Raises `InputError` when the constraints are infeasible or reject nearly every draw.
    """
    constraints.check_feasible()
    alpha = prior ** temperature
    alpha = alpha / alpha.sum()
    max_draws = max_draws or max(100 * n, 100_000)
    kept: list[np.ndarray] = []
    seen: set[bytes] = set()
    drawn = 0
    batch = max(4 * n, 4096)
    while len(kept) < n and drawn < max_draws:
        w = _dirichlet_draws(alpha, batch, rng, strengths)
        w = np.where(w < MIN_NONZERO, 0.0, w)
        w = np.round(w / w.sum(axis=1, keepdims=True) / MIN_NONZERO) * MIN_NONZERO
        w = w / w.sum(axis=1, keepdims=True)
        drawn += batch
        for row in w[constraints.satisfied(w)]:
            key = row.tobytes()
            if key not in seen:
                seen.add(key)
                kept.append(row)
                if len(kept) == n:
                    break
    if len(kept) < n:
        raise InputError(f"only {len(kept)} of {n} mixtures met the constraints after {drawn:,} draws; "
                         "loosen min/max weights or max_epochs")
    return np.stack(kept)


def sample_candidates(prior: np.ndarray, n: int, constraints: Constraints, rng: np.random.Generator,
                      temperature: float = 1.0) -> np.ndarray:
    """Many candidate mixtures for search (duplicates allowed), in batches, all meeting constraints."""
    constraints.check_feasible()
    out: list[np.ndarray] = []
    have = 0
    attempts = 0
    alpha = prior ** temperature
    alpha = alpha / alpha.sum()
    while have < n:
        attempts += 1
        if attempts > 200 and have == 0:
            raise InputError("no candidate mixture met the constraints; loosen min/max weights or max_epochs")
        w = _dirichlet_draws(alpha, min(n, 200_000), rng)
        w = w[constraints.satisfied(w)]
        out.append(w)
        have += len(w)
    return np.concatenate(out)[:n]


def rounded_weights(names: list[str], weights: np.ndarray, decimals: int = 6) -> dict[str, float]:
    """{name: weight} rounded to `decimals` places so that the written numbers sum to exactly 1: round
    each, then give the remainder to the largest (naive rounding summed to 0.999999)."""
    scale = 10**decimals
    units = np.rint(np.asarray(weights, dtype=np.float64) / np.sum(weights) * scale).astype(np.int64)
    units[int(np.argmax(units))] += scale - int(units.sum())
    return {n: round(int(u) / scale, decimals) for n, u in zip(names, units, strict=True)}
