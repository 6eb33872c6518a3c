"""C4 rules (Raffel et al. 2020, datatrove's C4QualityFilter defaults) as a pure filter: lines without
terminal punctuation, with fewer than 3 words, or mentioning javascript or a policy are not counted;
a row is dropped for lorem ipsum, a curly bracket, or fewer than 5 sentences in the lines that remain."""

from __future__ import annotations

import re

from curate.step import Decision, Filter

TERMINAL = (".", "?", "!", '"', "'", "”", "’")
POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
_CITATION = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]")
_SENTENCE = re.compile(r"[.!?]+(?:\s|$)")


class C4Filter(Filter):
    name = "c4"

    def __init__(self, fields: list[str], min_num_sentences: int = 5, min_words_per_line: int = 3,
                 max_word_length: int = 1000, filter_lorem_ipsum: bool = True, filter_curly_bracket: bool = True):
        super().__init__(fields)
        self.min_sentences = min_num_sentences
        self.min_words = min_words_per_line
        self.max_word_length = max_word_length
        self.lorem = filter_lorem_ipsum
        self.curly = filter_curly_bracket

    def filter(self, text: str) -> Decision:
        lower = text.lower()
        if self.lorem and "lorem ipsum" in lower:
            return False, "c4:lorem_ipsum", "contains 'lorem ipsum'"
        if self.curly and "{" in text:
            return False, "c4:curly_bracket", "contains '{' (likely code)"
        kept = []
        for line in text.splitlines():
            line = _CITATION.sub("", line).strip()
            words = line.split()
            low = line.lower()
            if (len(words) < self.min_words or not line.endswith(TERMINAL) or "javascript" in low
                    or any(p in low for p in POLICY) or max(map(len, words)) > self.max_word_length):
                continue
            kept.append(line)
        sentences = sum(len(_SENTENCE.findall(line)) for line in kept)
        if sentences < self.min_sentences:
            return False, "c4:too_few_sentences", f"{sentences} sentences in {len(kept)} usable lines"
        return True
