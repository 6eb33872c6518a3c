"""C4 rules (Raffel et al. 2020) as in TensorFlow Datasets' `c4_utils` and datatrove's C4QualityFilter,
with the same defaults and the same order, line by line: a line with a word over 1000 characters, without
terminal punctuation (. ? ! " ') or ending in "...", with fewer than 3 words, mentioning javascript or a
cookie/terms policy is not kept; "lorem ipsum" or a curly bracket in a line that got that far drops the
page; a page with fewer than 5 sentences in its kept lines is dropped.

Sentences are counted per kept line at . ? ! runs (closing quotes and brackets may follow) that end a
token, skipping common abbreviations (Mr., e.g.) - the cases NLTK's Punkt model, which datatrove uses,
decides the same way on ordinary text. Word counts are whitespace words, as in C4's code.
"""

from __future__ import annotations

import re

from curate.step import Decision, Filter

TERMINAL = (".", "?", "!", '"', "'")
POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
_CITATION = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]")
_ABBREVIATIONS = ("Mr", "Mrs", "Ms", "Dr", "St", "vs", "etc", "e.g", "i.e", "Prof", "Inc", "Ltd", "Jr", "Sr")
_SENTENCE_END = re.compile("".join(rf"(?<!\b{re.escape(a)})" for a in _ABBREVIATIONS)
                           + r"[.!?]+[\"'”’)\]]*(?=\s|$)")


def count_sentences(line: str) -> int:
    """Sentences in one line: ends of sentences found, plus the trailing text after the last one."""
    ends = list(_SENTENCE_END.finditer(line))
    tail = line[ends[-1].end():] if ends else line
    return len(ends) + bool(tail.strip())


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
        sentences = kept = 0
        for line in text.splitlines():
            line = line.strip()
            words = line.split()
            if any(len(w) > self.max_word_length for w in words):
                continue
            line = _CITATION.sub("", line)
            if not line.endswith(TERMINAL) or line.endswith("...") or len(words) < self.min_words:
                continue
            low = line.lower()
            if self.lorem and "lorem ipsum" in low:
                return False, "c4:lorem_ipsum", "a kept line contains 'lorem ipsum'"
            if "javascript" in low:
                continue
            if self.curly and "{" in line:
                return False, "c4:curly_bracket", "a kept line contains '{' (likely code)"
            if any(p in low for p in POLICY):
                continue
            sentences += count_sentences(line)
            kept += 1
        if sentences < self.min_sentences:
            return False, "c4:too_few_sentences", f"{sentences} sentences in {kept} usable lines"
        return True
