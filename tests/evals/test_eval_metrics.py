"""The evaluation statistics: pass@k against brute force, maj@k ties, Wilson and bootstrap intervals,
the paired bootstrap on planted differences."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from evals.metrics import (
    benchmark_metrics,
    bootstrap_interval,
    majority_correct,
    mean_interval,
    paired_bootstrap,
    pass_at_k,
    wilson_interval,
)


@pytest.mark.parametrize("n,c,k", [(5, 0, 1), (5, 2, 1), (5, 2, 2), (6, 3, 4), (8, 1, 8), (4, 4, 2), (7, 2, 6)])
def test_pass_at_k_equals_the_share_of_k_subsets_with_a_correct_sample(n, c, k):
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    brute = sum(any(samples[i] for i in s) for s in subsets) / len(subsets)
    assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12)
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-12)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_majority_vote_counts_answers_and_breaks_ties_by_first_seen():
    assert majority_correct(["7", "8", "8"], [True, False, False], 3) is False
    assert majority_correct(["7", "8", "7"], [True, False, True], 3) is True
    assert majority_correct(["8", "7", "7", "8"], [False, True, True, False], 4) is False  # tie: "8" came first
    assert majority_correct(["8", "7", "7"], [False, True, True], 1) is False  # only the first sample counts
    assert majority_correct([None, "", None], [None, False, None], 3) is False


def test_wilson_interval_matches_the_formula_and_stays_inside_0_1():
    lo, hi = wilson_interval(50, 100)
    assert (lo, hi) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and hi == pytest.approx(0.1611, abs=1e-4)
    lo, hi = wilson_interval(20, 20)
    assert hi == 1.0 and lo == pytest.approx(0.8389, abs=1e-4)


def test_bootstrap_interval_is_seeded_and_covers_the_mean():
    x = np.random.default_rng(3).random(200)
    a, b = bootstrap_interval(x, seed=1), bootstrap_interval(x, seed=1)
    assert a == b and a[0] < x.mean() < a[1]
    assert a[1] - a[0] == pytest.approx(2 * 1.96 * x.std(ddof=1) / math.sqrt(200), rel=0.15)
    assert mean_interval([1, 0, 1, 1])[1] == "wilson" and mean_interval([0.5, 1.0])[1] == "bootstrap"


def test_paired_bootstrap_finds_a_planted_gain_and_not_noise():
    rng = np.random.default_rng(0)
    a = (rng.random(300) < 0.5).astype(float)
    better = a.copy()
    better[np.flatnonzero(a == 0)[:45]] = 1.0  # 45 of 300 items flip to correct: +15 points
    diff = paired_bootstrap(a, better, seed=0)
    assert diff.diff == pytest.approx(0.15) and diff.significant and diff.p_value < 0.001
    swapped = a.copy()  # 5 items up, 5 down: no change in the mean
    up, down = np.flatnonzero(a == 0)[:5], np.flatnonzero(a == 1)[:5]
    swapped[up], swapped[down] = 1.0, 0.0
    same = paired_bootstrap(a, swapped, seed=0)
    assert same.diff == 0.0 and not same.significant and same.p_value > 0.5
    assert paired_bootstrap(a, a).p_value == 1.0
    with pytest.raises(ValueError):
        paired_bootstrap(a, a[:10])


def test_benchmark_metrics_from_per_item_samples():
    correct = [[True, False, False, False], [True, True, True, False], [False, False, False, False]]
    answers = [["1", "2", "2", "3"], ["5", "5", "5", "6"], ["9", "9", "8", "7"]]
    tokens = [[3, 4, 5, 6], [2, 2, 2, 2], [8, 8, 8, 8]]
    truncated = [[False] * 4, [False] * 4, [True, False, False, False]]
    m = benchmark_metrics(correct, answers, tokens, truncated, seed=0)
    assert m["items"] == 3 and m["samples_per_item"] == 4
    assert m["accuracy"] == pytest.approx((0.25 + 0.75 + 0) / 3)
    assert m["pass@1"] == pytest.approx(m["accuracy"])
    assert m["pass@4"] == pytest.approx(2 / 3)
    assert m["maj@4"] == pytest.approx(1 / 3)  # item 0 votes "2" (wrong), item 1 votes "5" (right)
    assert m["mean_response_tokens"] == pytest.approx(np.mean(sum(tokens, [])))
    assert m["truncation_rate"] == pytest.approx(1 / 12)
    assert m["ci_method"] == "bootstrap" and m["ci95"][0] <= m["accuracy"] <= m["ci95"][1]
    single = benchmark_metrics([[True], [False], [True], [None]])
    assert single["accuracy"] == 0.5 and single["ci_method"] == "wilson" and "pass@2" not in single
