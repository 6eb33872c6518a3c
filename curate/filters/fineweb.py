"""FineWeb's line-level quality rules (Penedo et al. 2024, datatrove's FineWebQualityFilter defaults):
few lines ending in punctuation, mostly short lines, characters in duplicated lines, list-like text."""

from __future__ import annotations

from curate.filters.c4 import TERMINAL
from curate.filters.gopher import duplicates
from curate.step import Decision, Filter


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
        lines = [line.strip() for line in text.split("\n") if line.strip()]
        if not lines:
            return False, "fineweb:empty", "no non-blank lines"
        punct = sum(line.endswith(TERMINAL) for line in lines) / len(lines)
        if punct <= self.line_punct_thr:
            return False, "fineweb:line_punct_ratio", f"{punct:.2f} of lines end in punctuation"
        short = sum(len(line) <= self.short_line_length for line in lines) / len(lines)
        if short >= self.short_line_thr:
            return False, "fineweb:short_line_ratio", f"{short:.2f} of lines are short"
        dup_chars = duplicates(lines)[1] / max(len(text.replace("\n", "")), 1)
        if dup_chars >= self.char_duplicates_ratio:
            return False, "fineweb:char_dup_ratio", f"{dup_chars:.3f} of chars in duplicated lines"
        newlines = text.count("\n") / max(len(text.split()), 1)
        if newlines > self.new_line_ratio:
            return False, "fineweb:list_ratio", f"{newlines:.2f} newlines per word"
        return True
