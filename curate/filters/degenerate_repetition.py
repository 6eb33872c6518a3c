"""Degenerate repetition: a response that ends in a loop, the classic failure of sampled reasoning traces.

Two signals. The tail: the last `tail_words` words are checked for a period p (1 to `max_period` words)
such that every word equals the word p places before it over the final stretch, so a loop cut off in the
middle of its unit still counts (reason `degenerate_repetition:ngram_loop`). The whole text: the zlib
compression ratio of a long response past `max_compression_ratio` (`degenerate_repetition:compression`).
Unlike Gopher's repetition rules this leaves short, formulaic but correct answers (GSM8K) alone.
"""

from __future__ import annotations

import zlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.filters.conversation import ResponseFilter
from curate.step import Decision
from workbench.errors import InputError


def tail_loop(words: list[str], max_period: int) -> tuple[int, int]:
    """(period, span in words) of the longest repeating tail, with the smallest period first; (0, 0) if none.

    Words become integer ids; row p-1 of a (periods x words) matrix marks where a word equals the word p
    before it, and the run of marks at the end of that row plus p is the span the loop covers.
    """
    n = len(words)
    periods = min(max_period, n // 2)
    if periods < 1:
        return 0, 0
    vocab: dict[str, int] = {}
    ids = np.fromiter((vocab.setdefault(w, len(vocab)) for w in words), dtype=np.int64, count=n)
    lag = np.arange(1, periods + 1)[:, None]
    pos = np.arange(n)[None, :]
    same = (pos >= lag) & (ids[None, :] == ids[np.maximum(pos - lag, 0)])
    # trailing run of True per row: index of the last False from the end
    run = np.where(same.all(axis=1), n, np.argmin(same[:, ::-1], axis=1))
    spans = np.where(run > 0, np.minimum(run + lag[:, 0], n), 0)
    best = int(np.argmax(spans / lag[:, 0]))  # most repeats of its unit
    return best + 1, int(spans[best])


class DegenerateRepetitionFilter(ResponseFilter):
    """Drop responses whose tail repeats a unit `min_repeats` times over at least `min_loop_words` words,
    or whose compression ratio (texts of `min_chars_for_ratio` or more) is above `max_compression_ratio`."""

    name = "degenerate_repetition"

    def __init__(self, fields: list[str], tail_words: int = 400, max_period: int = 60, min_repeats: float = 3,
                 min_loop_words: int = 20, max_compression_ratio: float | None = 6.0,
                 min_chars_for_ratio: int = 1000, check: str = "response"):
        super().__init__(fields, check)
        if min_repeats < 2 or max_period < 1 or tail_words < 2:
            raise InputError("degenerate_repetition: min_repeats must be >= 2, max_period >= 1, tail_words >= 2")
        self.tail_words = tail_words
        self.max_period = max_period
        self.min_repeats = min_repeats
        self.min_loop_words = min_loop_words
        self.max_ratio = max_compression_ratio
        self.min_chars = min_chars_for_ratio

    def decide(self, texts: pa.Array) -> list[Decision]:
        decisions: list[Decision] = [True] * len(texts)
        # only texts long enough to hold a loop are tokenised; trimmed first because Arrow's split turns a
        # leading or trailing space into an empty word, which broke the loop at its very end
        words = pc.utf8_split_whitespace(pc.utf8_trim_whitespace(texts))
        long_enough = np.flatnonzero(pc.list_value_length(words).fill_null(0).to_numpy(zero_copy_only=False)
                                     >= self.min_loop_words)
        for i in long_enough:
            tail = words[int(i)].as_py()[-self.tail_words:]
            period, span = tail_loop(tail, self.max_period)
            if period and span >= self.min_loop_words and span / period >= self.min_repeats:
                unit = " ".join(tail[-span:][:period])
                decisions[i] = (False, "degenerate_repetition:ngram_loop",
                                f"the last {span} words repeat a {period}-word unit {span / period:.1f} times: "
                                f"{unit[:80]!r}")
        if self.max_ratio is not None:
            sizes = pc.binary_length(texts.cast(pa.large_binary())).fill_null(0).to_numpy(zero_copy_only=False)
            for i in np.flatnonzero(sizes >= self.min_chars):
                if decisions[i] is not True:
                    continue
                raw = texts[int(i)].as_py().encode()
                ratio = len(raw) / len(zlib.compress(raw, 6))
                if ratio > self.max_ratio:
                    decisions[i] = (False, "degenerate_repetition:compression",
                                    f"compresses {ratio:.1f}x > {self.max_ratio}")
        return decisions
