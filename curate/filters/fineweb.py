"""FineWeb's line-level quality rules (Penedo et al. 2024) as in datatrove's FineWebQualityFilter, with
its defaults and strict thresholds: drop when under 12% of non-blank lines end in a sentence terminal
(. ! ? and the other Unicode sentence terminals; not quotes), over 67% of lines have at most 30
characters, over 1% of the characters sit in repeated lines, or there are over 0.3 newlines per word.

Lines are measured as written (indentation and trailing spaces count, as in datatrove), and words for
the newline ratio are `split_words` tokens, punctuation included, as datatrove's tokenizer gives them.
"""

from __future__ import annotations

from curate.filters.gopher import duplicates
from curate.filters.words import TERMINAL_PUNCTUATION, split_words
from curate.step import Decision, Filter

_STOP_CHARS = tuple(TERMINAL_PUNCTUATION)


class FineWebFilter(Filter):
    name = "fineweb"

    def __init__(self, fields: list[str], line_punct_thr: float = 0.12, short_line_thr: float = 0.67,
                 short_line_length: int = 30, char_duplicates_ratio: float = 0.01, new_line_ratio: float = 0.3):
        super().__init__(fields)
        self.line_punct_thr = line_punct_thr
        self.short_line_thr = short_line_thr
        self.short_line_length = short_line_length
        self.char_duplicates_ratio = char_duplicates_ratio
        self.new_line_ratio = new_line_ratio

    def filter(self, text: str) -> Decision:
        lines = [line for line in text.split("\n") if line.strip()]
        if not lines:
            return False, "fineweb:empty", "no non-blank lines"
        punct = sum(line.endswith(_STOP_CHARS) for line in lines) / len(lines)
        if punct < self.line_punct_thr:
            return False, "fineweb:line_punct_ratio", f"{punct:.2f} of lines end in a sentence terminal"
        short = sum(len(line) <= self.short_line_length for line in lines) / len(lines)
        if short > self.short_line_thr:
            return False, "fineweb:short_line_ratio", f"{short:.2f} of lines are short"
        dup_chars = duplicates(lines)[1] / len(text.replace("\n", ""))
        if dup_chars > self.char_duplicates_ratio:
            return False, "fineweb:char_dup_ratio", f"{dup_chars:.3f} of chars in duplicated lines"
        newlines = text.count("\n") / max(len(split_words(text)), 1)
        if newlines > self.new_line_ratio:
            return False, "fineweb:list_ratio", f"{newlines:.2f} newlines per word"
        return True
