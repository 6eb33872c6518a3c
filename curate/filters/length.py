"""Length filter: characters, whitespace words and (with a tokenizer) tokens, vectorised per batch."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.step import Decision, Filter


class LengthFilter(Filter):
    """Drop rows outside [min, max] characters, words or tokens; reason `length:<which>`."""

    name = "length"

    def __init__(self, fields: list[str], min_chars: int = 1, max_chars: int = 1_000_000, min_words: int = 0,
                 max_words: int | None = None, min_tokens: int = 0, max_tokens: int | None = None,
                 tokenizer: str | None = None):
        super().__init__(fields)
        self.bounds = {"chars": (min_chars, max_chars), "words": (min_words, max_words),
                       "tokens": (min_tokens, max_tokens)}
        self.tokenizer_name = tokenizer
        self._tokenizer = None

    def measure(self, texts: pa.Array) -> dict[str, np.ndarray]:
        sizes = {"chars": pc.utf8_length(texts).to_numpy(zero_copy_only=False),
                 "words": pc.list_value_length(pc.utf8_split_whitespace(pc.utf8_trim_whitespace(texts)))
                 .to_numpy(zero_copy_only=False)}
        if self.tokenizer_name:
            if self._tokenizer is None:
                from transformers import AutoTokenizer

                self._tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_name)
            ids = self._tokenizer(texts.to_pylist(), add_special_tokens=False)["input_ids"]
            sizes["tokens"] = np.array([len(x) for x in ids])
        return sizes

    def decide(self, texts: pa.Array) -> list[Decision]:
        decisions: list[Decision] = [True] * len(texts)
        for kind, values in self.measure(texts).items():
            low, high = self.bounds[kind]
            for i in np.flatnonzero((values < low) | ((values > high) if high is not None else False)):
                if decisions[i] is True:
                    side = "min" if values[i] < low else "max"
                    decisions[i] = (False, f"length:{side}_{kind}",
                                    f"{values[i]} {kind}, {side} {low if side == 'min' else high}")
        return decisions
