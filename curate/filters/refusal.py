"""Refusals and assistant boilerplate in responses, matched case-insensitively as whole phrases.

Refusal phrases are looked for in the first `window` characters (a refusal opens the reply; a long
trace may well say "I cannot" later on its way to an answer); boilerplate anywhere. Both lists are
settings; `extra_phrases` adds to the refusal defaults instead of replacing them.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.filters.conversation import ResponseFilter
from curate.step import Decision
from workbench.errors import InputError

REFUSALS = (
    "I'm sorry, but I can't", "I am sorry, but I can't", "I'm sorry, but I cannot", "I am sorry, but I cannot",
    "I'm sorry, I can't", "I'm sorry, I cannot", "I apologize, but I can't", "I apologize, but I cannot",
    "I can't help with that", "I cannot help with that", "I can't assist with", "I cannot assist with",
    "I can't provide", "I cannot provide", "I'm unable to help", "I am unable to help",
    "I'm unable to provide", "I am unable to provide", "I'm not able to help", "I won't be able to help",
    "I must decline", "I can't fulfill", "I cannot fulfill", "I can't comply", "I cannot comply",
    "I'm not comfortable", "I am not comfortable", "against my guidelines", "against my programming",
)
BOILERPLATE = (
    "As an AI language model", "As a language model", "As an AI developed by", "As a large language model",
    "I am an AI developed by", "I'm an AI developed by", "my knowledge cutoff", "my training data only goes",
    "I don't have personal opinions", "I do not have personal opinions", "I don't have access to real-time",
)


def phrase_regex(phrases: list[str] | tuple[str, ...]) -> str:
    """A case-insensitive alternation of whole phrases (apostrophes normalised beforehand)."""
    return "(?i)" + "|".join(rf"\b{re.escape(p.replace(chr(8217), chr(39)))}" for p in phrases)


class RefusalFilter(ResponseFilter):
    """Reasons: `refusal:refuses` (a refusal phrase near the start) and `refusal:boilerplate`."""

    name = "refusal"

    def __init__(self, fields: list[str], phrases: list[str] | None = None, extra_phrases: list[str] | None = None,
                 boilerplate: list[str] | None = None, window: int = 400, check: str = "response"):
        super().__init__(fields, check)
        self.phrases = list(REFUSALS if phrases is None else phrases) + list(extra_phrases or [])
        self.boilerplate = list(BOILERPLATE if boilerplate is None else boilerplate)
        if window < 0:
            raise InputError(f"refusal: window must be >= 0 (0 = the whole text), got {window}")
        self.window = window
        self.checks = [(name, phrase_regex(ps), re.compile(phrase_regex(ps)), head)
                       for name, ps, head in (("refuses", self.phrases, True), ("boilerplate", self.boilerplate, False))
                       if ps]

    def decide(self, texts: pa.Array) -> list[Decision]:
        texts = pc.replace_substring(pc.fill_null(texts, ""), "\u2019", "'")
        head = pc.utf8_slice_codeunits(texts, 0, self.window) if self.window else texts
        decisions: list[Decision] = [True] * len(texts)
        for rule, pattern, compiled, at_start in self.checks:
            where = head if at_start else texts
            for i in np.flatnonzero(pc.match_substring_regex(where, pattern).to_numpy(zero_copy_only=False)):
                if decisions[i] is True:
                    found = compiled.search(where[int(i)].as_py())
                    decisions[i] = (False, f"refusal:{rule}", f"says {found.group(0)!r}" if found else rule)
        return decisions
