"""Keep policies: which row of a duplicate group survives.

`first` (earliest row), `longest` (most characters), `score:COL` (highest value of a numeric column),
`source-priority` (the source listed first in `source_priority`, or the order the inputs were given).
Ties always go to the earlier row, so the choice is deterministic.
"""

from __future__ import annotations

import numpy as np

from workbench.errors import InputError

POLICIES = ("first", "longest", "score:COL", "source-priority")


def check_policy(policy: str) -> None:
    if policy in ("first", "longest", "source-priority") or (policy.startswith("score:") and len(policy) > 6):
        return
    raise InputError(f"--keep {policy!r}: expected one of {', '.join(POLICIES)}")


def score_column(policy: str) -> str | None:
    return policy.split(":", 1)[1] if policy.startswith("score:") else None


def keep_rank(policy: str, lengths: np.ndarray, scores: np.ndarray | None, source_rank: np.ndarray) -> np.ndarray:
    """Rank of every row under `policy` (0 = the row to keep first); lower always wins."""
    index = np.arange(len(lengths))
    if policy == "first":
        keys: tuple = (index,)
    elif policy == "longest":
        keys = (index, -lengths)
    elif policy == "source-priority":
        keys = (index, source_rank)
    else:
        filled = np.where(np.isnan(scores), -np.inf, scores)
        keys = (index, -filled)
    order = np.lexsort(keys)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank
