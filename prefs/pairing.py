"""Pair strategies over one `samples` table (every side's units stacked: strong block, then weak block).

Each strategy returns a `Pairs`: for every candidate pair the row of its chosen and rejected sample
(-1: none), the reason it is dropped (None: kept) and the verifier's view of it. Checks are vectorised
over numpy arrays; best-vs-worst walks prompts, whose sample groups are small.

Drop reasons: `failed`, `truncated`, `empty` (either side), `identical_text`, `tied_scores`,
`too_few_candidates` (fewer than two ok, non-empty, scored samples), `verifier_inverted` (chosen wrong,
rejected right, with --on-inverted drop; `swap` exchanges the sides instead), and for rejection sampling
`no_candidates` and `best_wrong` (the verifier says the best-scored sample is wrong).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from prefs.scoring import scorable


@dataclass
class Pairs:
    chosen: np.ndarray  # int64 row in samples, -1 for none
    rejected: np.ndarray  # int64 row in samples, -1 for none (rejection sampling: always -1)
    prompt_row: np.ndarray  # int64 row in prompts
    pair_index: np.ndarray  # int64: the sample index for delta, 0 otherwise
    reason: np.ndarray  # object: drop reason or None
    verdict: np.ndarray  # object: chosen_correct | both_correct | both_wrong | swapped | inverted | None


@dataclass
class SampleView:
    """The columns of `samples` the strategies read, as numpy arrays."""

    status: np.ndarray
    text: np.ndarray  # the rendered assistant message
    usable: np.ndarray  # ok and a non-empty answer
    empty: np.ndarray
    verified: np.ndarray  # object: True | False | None
    score: np.ndarray  # float, nan for none
    prompt_row: np.ndarray

    @classmethod
    def of(cls, samples: pa.Table, texts: list[str | None], rows: int, n: int) -> SampleView:
        content = samples.column("content").to_pylist()
        empty = np.array([not (c or "").strip() for c in content], dtype=bool)
        score = samples.column("score").to_numpy(zero_copy_only=False).astype(float)
        prompt_row = (np.arange(samples.num_rows) % (rows * n)) // n
        return cls(np.array(samples.column("status").to_pylist(), dtype=object), np.array(texts, dtype=object),
                   scorable(samples).to_numpy(zero_copy_only=False), empty,
                   np.array(samples.column("verified").to_pylist(), dtype=object), score, prompt_row)


def _mark(reason: np.ndarray, mask: np.ndarray, name: str) -> None:
    """Give `name` to the pairs in `mask` that have no reason yet (the first failed check names a drop)."""
    reason[(reason == None) & mask] = name  # noqa: E711 - elementwise on an object array


def _verified_at(view: SampleView, idx: np.ndarray) -> np.ndarray:
    out = np.full(len(idx), None, dtype=object)
    out[idx >= 0] = view.verified[idx[idx >= 0]]
    return out


def apply_verdicts(view: SampleView, pairs: Pairs, on_inverted: str) -> None:
    """Label kept pairs by the verifier; swap or drop those whose chosen side is wrong and rejected right."""
    vc, vr = _verified_at(view, pairs.chosen), _verified_at(view, pairs.rejected)
    kept = pairs.reason == None  # noqa: E711
    inverted = kept & (vc == False) & (vr == True)  # noqa: E712 - object arrays hold True/False/None
    pairs.verdict[kept & (vc == True) & (vr == False)] = "chosen_correct"  # noqa: E712
    pairs.verdict[kept & (vc == True) & (vr == True)] = "both_correct"  # noqa: E712
    pairs.verdict[kept & (vc == False) & (vr == False)] = "both_wrong"  # noqa: E712
    if on_inverted == "swap":
        pairs.chosen[inverted], pairs.rejected[inverted] = pairs.rejected[inverted], pairs.chosen[inverted].copy()
        pairs.verdict[inverted] = "swapped"
    else:
        pairs.reason[inverted] = "verifier_inverted"
        pairs.verdict[inverted] = "inverted"


def delta_pairs(view: SampleView, rows: int, n: int) -> Pairs:
    """Strong sample i against weak sample i of each prompt; the strong side is chosen."""
    m = rows * n
    c, r = np.arange(m), m + np.arange(m)
    reason = np.full(m, None, dtype=object)
    _mark(reason, (view.status[c] == "failed") | (view.status[r] == "failed"), "failed")
    _mark(reason, (view.status[c] == "truncated") | (view.status[r] == "truncated"), "truncated")
    _mark(reason, view.empty[c] | view.empty[r], "empty")
    _mark(reason, view.text[c] == view.text[r], "identical_text")
    return Pairs(c, r, view.prompt_row[c], np.arange(m) % n, reason, np.full(m, None, dtype=object))


def _candidates(view: SampleView, rows: int) -> list[np.ndarray]:
    """Per prompt, the rows of its usable, scored samples (strong before weak, then by sample index)."""
    ok = np.flatnonzero(view.usable & ~np.isnan(view.score))
    ok = ok[np.argsort(view.prompt_row[ok], kind="stable")]
    return np.split(ok, np.searchsorted(view.prompt_row[ok], np.arange(1, rows)))


def best_vs_worst_pairs(view: SampleView, rows: int) -> Pairs:
    """Per prompt, the best-scored sample against the worst; ties and look-alikes are dropped."""
    c, r = np.full(rows, -1), np.full(rows, -1)
    reason = np.full(rows, None, dtype=object)
    for p, cand in enumerate(_candidates(view, rows)):
        if len(cand) < 2:
            reason[p] = "too_few_candidates"
            c[p] = cand[0] if len(cand) else -1
            continue
        scores = view.score[cand]
        c[p], r[p] = cand[int(np.argmax(scores))], cand[int(np.argmin(scores))]
        if scores.max() == scores.min():
            reason[p] = "tied_scores"
        elif view.text[c[p]] == view.text[r[p]]:
            reason[p] = "identical_text"
    return Pairs(c, r, np.arange(rows), np.zeros(rows, dtype=np.int64), reason, np.full(rows, None, dtype=object))


def best_of_k(view: SampleView, rows: int, verify: bool) -> Pairs:
    """Per prompt, the best-scored sample as SFT data (Llama 3 style rejection sampling)."""
    c = np.full(rows, -1)
    reason = np.full(rows, None, dtype=object)
    for p, cand in enumerate(_candidates(view, rows)):
        if not len(cand):
            reason[p] = "no_candidates"
            continue
        c[p] = cand[int(np.argmax(view.score[cand]))]
        if verify and view.verified[c[p]] is False:
            reason[p] = "best_wrong"
    return Pairs(c, np.full(rows, -1), np.arange(rows), np.zeros(rows, dtype=np.int64), reason,
                 np.full(rows, None, dtype=object))
