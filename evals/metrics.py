"""Benchmark metrics as pure functions of per-item verdicts: pass@k, maj@k, intervals, paired comparisons.

pass@k uses the unbiased estimator of Chen et al. (2021): with n samples of which c are correct,
pass@k = 1 - C(n-c, k) / C(n, k), averaged over items. maj@k takes the most frequent extracted answer
among an item's first k samples (ties go to the answer seen first) and scores its verdict. Intervals are
Wilson for a 0/1 score per item and a seeded percentile bootstrap over items otherwise; a comparison of
two runs resamples the same items for both (a paired bootstrap), so item difficulty cancels out.
Nothing here imports torch; `numpy` only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one item with `n` samples, `c` correct: 1 - C(n-c, k) / C(n, k).

    Computed as the product form 1 - prod_{i=n-c+1}^{n} (1 - k/i), which never forms large binomials.
    Raises ValueError when k > n or c is outside [0, n].
    """
    if not 0 <= c <= n or k < 1 or k > n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n; got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def majority_correct(answers: Sequence[str | None], correct: Sequence[bool | None], k: int) -> bool:
    """maj@k for one item: is the most frequent non-empty answer among the first `k` samples correct?
    Ties go to the answer that appeared first; an item with no answer at all scores False."""
    counts: dict[str, int] = {}
    verdict: dict[str, bool] = {}
    for answer, ok in zip(answers[:k], correct[:k], strict=True):
        if answer is None or answer == "":
            continue
        counts[answer] = counts.get(answer, 0) + 1
        verdict.setdefault(answer, bool(ok))
    if not counts:
        return False
    best = max(counts.values())
    winner = next(a for a, c in counts.items() if c == best)  # dicts keep first-seen order
    return verdict[winner]


def wilson_interval(successes: int, total: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion (good at 0%, 100% and small n)."""
    if total <= 0:
        return (0.0, 0.0) if total == 0 and successes == 0 else (math.nan, math.nan)
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends: no rounding residue at 0% or 100%
    hi = 1.0 if successes == total else min(1.0, centre + half)
    return lo, hi


def bootstrap_interval(scores: Sequence[float] | np.ndarray, resamples: int = 2000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-item `scores` (items resampled with replacement)."""
    x = np.asarray(scores, dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


def mean_interval(scores: Sequence[float] | np.ndarray, seed: int = 0) -> tuple[tuple[float, float], str]:
    """(95% interval of the mean, method): Wilson when every score is 0 or 1, else the bootstrap."""
    x = np.asarray(scores, dtype=np.float64)
    if x.size and np.all((x == 0) | (x == 1)):
        return wilson_interval(int(x.sum()), int(x.size)), "wilson"
    return bootstrap_interval(x, seed=seed), "bootstrap"


@dataclass
class PairedDiff:
    """B minus A on the same items: the mean difference, its 95% bootstrap interval and a two-sided p."""

    items: int
    mean_a: float
    mean_b: float
    diff: float
    ci95: tuple[float, float]
    p_value: float

    @property
    def significant(self) -> bool:
        """True when the interval excludes zero: the difference exceeds resampling noise."""
        lo, hi = self.ci95
        return lo > 0 or hi < 0


def paired_bootstrap(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, resamples: int = 10_000,
                     seed: int = 0) -> PairedDiff:
    """Paired bootstrap over items of mean(b) - mean(a); `a[i]` and `b[i]` score the same item.

    The p-value is twice the share of resamples on the far side of zero (capped at 1), the usual
    bootstrap sign test; with all differences zero it is 1.
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired scores need the same items; got {x.size} and {y.size}")
    if x.size == 0:
        raise ValueError("paired bootstrap needs at least one shared item")
    d = y - x
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    if not d.any():
        p = 1.0
    else:
        p = min(1.0, 2 * min(float((means <= 0).mean()), float((means >= 0).mean())))
    return PairedDiff(int(d.size), float(x.mean()), float(y.mean()), float(d.mean()), (float(lo), float(hi)), p)


def benchmark_metrics(correct: list[list[bool | None]], answers: list[list[str | None]] | None = None,
                      tokens: list[list[int]] | None = None, truncated: list[list[bool]] | None = None,
                      k: int | None = None, seed: int = 0) -> dict:
    """The metrics of one benchmark from per-item lists of per-sample verdicts (None = no verdict: wrong).

    Returns accuracy (mean over all samples), pass@1, pass@k and maj@k (k = samples per item, when > 1),
    ci95 of the accuracy with its method, items, samples, mean response tokens and the truncation rate.
    Every item must have the same number of samples.
    """
    if not correct:
        raise ValueError("no items to score")
    n = len(correct[0])
    if n < 1 or any(len(row) != n for row in correct):
        raise ValueError("every item needs the same number of samples (at least one)")
    k = k or n
    c = np.array([sum(bool(v) for v in row) for row in correct])
    per_item = c / n
    ci, method = mean_interval(per_item, seed)
    out: dict = {"items": len(correct), "samples_per_item": n, "accuracy": float(per_item.mean()),
                 "pass@1": float(np.mean([pass_at_k(n, int(ci_), 1) for ci_ in c])),
                 "ci95": [ci[0], ci[1]], "ci_method": method}
    if k > 1:
        out[f"pass@{k}"] = float(np.mean([pass_at_k(n, int(ci_), k) for ci_ in c]))
        if answers is not None:
            out[f"maj@{k}"] = float(np.mean([majority_correct(a, v, k) for a, v in zip(answers, correct, strict=True)]))
    if tokens is not None:
        out["mean_response_tokens"] = float(np.mean([t for row in tokens for t in row]))
    if truncated is not None:
        out["truncation_rate"] = float(np.mean([bool(t) for row in truncated for t in row]))
    return out
