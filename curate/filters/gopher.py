"""Gopher quality and repetition rules (Rae et al. 2021, as in datatrove's GopherQualityFilter and
GopherRepetitionFilter, with the same defaults). Reasons are `gopher_quality:<rule>` and
`gopher_repetition:<rule>`; the detail gives the measured value and the limit."""

from __future__ import annotations

import re
from collections import Counter

from curate.step import Decision, Filter

STOP_WORDS = frozenset(("the", "be", "to", "of", "and", "that", "have", "with"))
_PARAGRAPHS = re.compile(r"\n{2,}")
_LINES = re.compile(r"\n+")


def duplicates(items: list[str]) -> tuple[int, int]:
    """(number of repeated items, characters in repeated items), counting every repeat after the first."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


class GopherQualityFilter(Filter):
    name = "gopher_quality"

    def __init__(self, fields: list[str], min_doc_words: int = 50, max_doc_words: int = 100_000,
                 min_avg_word_length: float = 3, max_avg_word_length: float = 10,
                 max_symbol_word_ratio: float = 0.1, max_bullet_lines_ratio: float = 0.9,
                 max_ellipsis_lines_ratio: float = 0.3, max_non_alpha_words_ratio: float = 0.8,
                 min_stop_words: int = 2):
        super().__init__(fields)
        self.s = dict(locals())

    def filter(self, text: str) -> Decision:
        s = self.s
        words = text.split()
        n = len(words)
        if n < s["min_doc_words"] or n > s["max_doc_words"]:
            side = "min" if n < s["min_doc_words"] else "max"
            return False, f"gopher_quality:{side}_doc_words", f"{n} words"
        avg = sum(len(w) for w in words) / n
        if not s["min_avg_word_length"] <= avg <= s["max_avg_word_length"]:
            return False, "gopher_quality:avg_word_length", f"mean word length {avg:.2f}"
        symbols = (text.count("#") + text.count("...") + text.count("…")) / n
        if symbols > s["max_symbol_word_ratio"]:
            return False, "gopher_quality:symbol_word_ratio", f"{symbols:.3f} > {s['max_symbol_word_ratio']}"
        lines = [line for line in text.splitlines() if line.strip()] or [""]
        bullets = sum(line.lstrip().startswith(("•", "-", "*", "‣", "◦")) for line in lines) / len(lines)
        if bullets > s["max_bullet_lines_ratio"]:
            return False, "gopher_quality:bullet_lines", f"{bullets:.2f} of lines start with a bullet"
        ellipsis = sum(line.rstrip().endswith(("...", "…")) for line in lines) / len(lines)
        if ellipsis > s["max_ellipsis_lines_ratio"]:
            return False, "gopher_quality:ellipsis_lines", f"{ellipsis:.2f} of lines end with an ellipsis"
        alpha = sum(any(c.isalpha() for c in w) for w in words) / n
        if alpha < s["max_non_alpha_words_ratio"]:
            return False, "gopher_quality:non_alpha_words", f"only {alpha:.2f} of words contain a letter"
        stops = sum(w.lower().strip(".,;:!?\"'") in STOP_WORDS for w in words)
        if stops < s["min_stop_words"]:
            return False, "gopher_quality:stop_words", f"{stops} stop words"
        return True


class GopherRepetitionFilter(Filter):
    name = "gopher_repetition"

    def __init__(self, fields: list[str], dup_line_frac: float = 0.3, dup_para_frac: float = 0.3,
                 dup_line_char_frac: float = 0.2, dup_para_char_frac: float = 0.2,
                 top_n_grams: dict | None = None, dup_n_grams: dict | None = None):
        super().__init__(fields)
        self.s = dict(locals())
        self.top = {int(k): v for k, v in (top_n_grams or {2: 0.2, 3: 0.18, 4: 0.16}).items()}
        self.dup = {int(k): v for k, v in (dup_n_grams or {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11,
                                                            10: 0.10}).items()}

    def filter(self, text: str) -> Decision:
        s = self.s
        size = max(len(text), 1)
        for unit, pattern in (("para", _PARAGRAPHS), ("line", _LINES)):
            parts = pattern.split(text.strip())
            count, chars = duplicates(parts)
            if count / len(parts) > s[f"dup_{unit}_frac"]:
                return False, f"gopher_repetition:dup_{unit}_frac", f"{count} of {len(parts)} {unit}s repeat"
            if chars / size > s[f"dup_{unit}_char_frac"]:
                return False, f"gopher_repetition:dup_{unit}_char_frac", f"{chars / size:.2f} of chars repeat"
        words = text.split()
        for n, limit in self.top.items():
            grams = [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]
            if grams:
                gram, count = Counter(grams).most_common(1)[0]
                if count > 1 and len(gram) * count / size > limit:
                    return False, f"gopher_repetition:top_{n}_gram", f"{gram!r} x{count}"
        for n, limit in self.dup.items():
            frac = _repeated_ngram_chars(words, n) / size
            if frac > limit:
                return False, f"gopher_repetition:dup_{n}_gram", f"{frac:.2f} of chars in repeated {n}-grams"
        return True


def _repeated_ngram_chars(words: list[str], n: int) -> int:
    seen: set[str] = set()
    chars = i = 0
    while i < len(words) - n + 1:
        gram = " ".join(words[i:i + n])
        if gram in seen:
            chars += len(gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars
