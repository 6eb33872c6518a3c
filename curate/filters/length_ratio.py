"""Length ratio of response to prompt, in words: a one-word reply to a long task, or an essay of a
reply to "hi", are usually generation failures. Vectorised per batch."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.filters.conversation import PairFilter
from curate.step import Decision
from workbench.errors import InputError


def word_counts(texts: pa.Array) -> np.ndarray:
    words = pc.utf8_split_whitespace(pc.utf8_trim_whitespace(pc.fill_null(texts, "")))
    return pc.list_value_length(words).to_numpy(zero_copy_only=False)


class LengthRatioFilter(PairFilter):
    """Reasons `length_ratio:low` and `length_ratio:high` (response words / prompt words, prompt >= 1)."""

    name = "length_ratio"

    def __init__(self, fields: list[str], min_ratio: float = 0.05, max_ratio: float | None = 100.0):
        super().__init__(fields)
        if min_ratio < 0 or (max_ratio is not None and max_ratio < min_ratio):
            raise InputError(f"length_ratio: need 0 <= min_ratio <= max_ratio, got {min_ratio} and {max_ratio}")
        self.min_ratio, self.max_ratio = min_ratio, max_ratio

    def decide_pairs(self, prompts: pa.Array, responses: pa.Array) -> list[Decision]:
        asked, answered = word_counts(prompts), word_counts(responses)
        ratio = answered / np.maximum(asked, 1)
        decisions: list[Decision] = [True] * len(ratio)
        high = ratio > self.max_ratio if self.max_ratio is not None else np.zeros(len(ratio), bool)
        for mask, side, limit in ((ratio < self.min_ratio, "low", self.min_ratio), (high, "high", self.max_ratio)):
            for i in np.flatnonzero(mask):
                decisions[i] = (False, f"length_ratio:{side}",
                                f"{answered[i]} response words / {asked[i]} prompt words = {ratio[i]:.3g}, "
                                f"{'min' if side == 'low' else 'max'} {limit}")
        return decisions
