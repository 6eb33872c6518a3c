"""Gopher quality and repetition rules (Rae et al. 2021, Table A1) as in datatrove's GopherQualityFilter
and GopherRepetitionFilter, with the same defaults, order and strict thresholds. Reasons are
`gopher_quality:<rule>` and `gopher_repetition:<rule>`; the detail gives the measured value.

Words are `affix_words` tokens: datatrove 0.10's English splitter (spaCy's tokenizer rules) in plain
Python, punctuation marks mostly tokens of their own; word counts and the mean word length count only
tokens that are not pure punctuation. Two
differences are deliberate (README, "Filters and datatrove"):
- the alpha rule ("80% of words contain a letter") counts whitespace words. datatrove counts every
  punctuation token as a word without a letter, so ordinary prose with dialogue punctuation, worked math
  and code fall under 80% and are dropped (1,298 of 3,027 documents in `bench/filters_parity.py`); the
  paper's rule is about words, and whitespace words still count a bare "=>" or "|" against the page.
- a top n-gram only counts when it occurs more than once. datatrove also drops a short document whose
  most frequent n-gram occurs once but covers 16-20% of its characters ("The answer is 42."): that is
  a length rule, not repetition, and short answers are ordinary post-training data.
`datatrove_compat: true` undoes both and splits words with datatrove's own English splitter (spaCy's
tokenizer; needs spaCy), which reproduces datatrove 0.10's decisions exactly, at spaCy's speed.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.filters.affixes import affix_words
from curate.filters.words import STOP_WORDS, datatrove_words, is_word, spacy_english, word_lists
from curate.step import Decision, Filter

_PARAGRAPHS = re.compile(r"\n{2,}")
_LINES = re.compile(r"\n+")
# str.splitlines' line boundaries, and str.strip's whitespace, for RE2.
_LINE_BREAK = r"\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\x{2028}\x{2029}]"
_SPACE = r"[\s\pZ\x0b\x1c-\x1f\x85]"


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


def _per_doc(parents: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(parents, weights=values, minlength=n)


COMPAT_HELP = ("reproduce datatrove 0.10's decisions exactly: its word splitter (spaCy's English tokenizer) and its "
               "rules where this filter deliberately differs (needs spaCy)")


class GopherQualityFilter(Filter):
    name = "gopher_quality"
    settings_help = {"datatrove_compat": COMPAT_HELP}

    def __init__(self, fields: list[str], min_doc_words: int = 50, max_doc_words: int = 100_000,
                 min_avg_word_length: float = 3, max_avg_word_length: float = 10,
                 max_symbol_word_ratio: float = 0.1, max_bullet_lines_ratio: float = 0.9,
                 max_ellipsis_lines_ratio: float = 0.3, max_non_alpha_words_ratio: float = 0.8,
                 min_stop_words: int = 2, datatrove_compat: bool = False):
        super().__init__(fields)
        self.s = dict(locals())
        self.compat = datatrove_compat
        if datatrove_compat:
            spacy_english()  # a missing spaCy is an error before the first row is read

    def measure(self, texts: pa.Array) -> dict[str, np.ndarray]:
        """Per text, vectorised over the batch: every quantity the rules compare with a limit."""
        n = len(texts)
        texts = pc.fill_null(texts.cast(pa.large_string()), "")
        tokens = word_lists(texts, datatrove_words if self.compat else affix_words)
        parents = pc.list_parent_indices(tokens).to_numpy()
        flat = pc.list_flatten(tokens)
        words = is_word(flat).to_numpy(zero_copy_only=False)
        lengths = pc.utf8_length(flat).to_numpy()
        m: dict[str, np.ndarray] = {"tokens": pc.list_value_length(tokens).to_numpy(zero_copy_only=False)}
        m["words"] = _per_doc(parents, words, n)
        m["avg_len"] = _per_doc(parents, lengths * words, n) / np.maximum(m["words"], 1)
        m["hashes"] = pc.count_substring(texts, "#").to_numpy()
        m["ellipses"] = pc.count_substring(texts, "...").to_numpy() + pc.count_substring(texts, "…").to_numpy()
        lines = pc.split_pattern_regex(texts, _LINE_BREAK)
        line_parents = pc.list_parent_indices(lines).to_numpy()
        flat_lines = pc.list_flatten(lines)
        ends_in_break = pc.match_substring_regex(texts, f"(?:{_LINE_BREAK})$").to_numpy(zero_copy_only=False)
        m["lines"] = pc.list_value_length(lines).to_numpy(zero_copy_only=False) - ends_in_break
        m["bullets"] = _per_doc(line_parents, pc.match_substring_regex(
            flat_lines, f"^{_SPACE}*[•-]").to_numpy(zero_copy_only=False), n)
        m["ellipsis_lines"] = _per_doc(line_parents, pc.match_substring_regex(
            flat_lines, f"(?:\\.\\.\\.|…){_SPACE}*$").to_numpy(zero_copy_only=False), n)
        # the alpha rule's words: whitespace words, or with datatrove every token (punctuation included)
        spaced = tokens if self.compat else pc.utf8_split_whitespace(texts)
        m["ws_words"] = pc.list_value_length(spaced).to_numpy(zero_copy_only=False)
        m["alpha_words"] = _per_doc(pc.list_parent_indices(spaced).to_numpy(), pc.match_substring_regex(
            pc.list_flatten(spaced), r"\pL").to_numpy(zero_copy_only=False), n)
        stop = pc.index_in(flat, value_set=pa.array(STOP_WORDS, pa.large_string())).to_numpy(zero_copy_only=False)
        hit = ~np.isnan(stop.astype(float))
        pairs = np.unique(parents[hit] * len(STOP_WORDS) + stop[hit].astype(np.int64))
        m["stop_words"] = np.bincount(pairs // len(STOP_WORDS), minlength=n)
        return m

    def decide(self, texts: pa.Array) -> list[Decision]:
        m = self.measure(texts)
        return [self._rules({k: v[i] for k, v in m.items()}) for i in range(len(texts))]

    def _rules(self, m: dict) -> Decision:
        s = self.s
        words, tokens = int(m["words"]), max(int(m["tokens"]), 1)
        if words < s["min_doc_words"] or words > s["max_doc_words"]:
            side = "min" if words < s["min_doc_words"] else "max"
            return False, f"gopher_quality:{side}_doc_words", f"{words} words"
        if not s["min_avg_word_length"] <= m["avg_len"] <= s["max_avg_word_length"]:
            return False, "gopher_quality:avg_word_length", f"mean word length {m['avg_len']:.2f}"
        for symbol in ("hashes", "ellipses"):
            ratio = m[symbol] / tokens
            if ratio > s["max_symbol_word_ratio"]:
                return False, "gopher_quality:symbol_word_ratio", f"{ratio:.3f} {symbol} per word"
        lines = max(int(m["lines"]), 1)
        if m["bullets"] / lines > s["max_bullet_lines_ratio"]:
            return False, "gopher_quality:bullet_lines", f"{m['bullets'] / lines:.2f} of lines start with a bullet"
        if m["ellipsis_lines"] / lines > s["max_ellipsis_lines_ratio"]:
            return False, "gopher_quality:ellipsis_lines", f"{m['ellipsis_lines'] / lines:.2f} of lines end with an ellipsis"
        alpha = m["alpha_words"] / max(int(m["ws_words"]), 1)
        if alpha < s["max_non_alpha_words_ratio"]:
            return False, "gopher_quality:non_alpha_words", f"only {alpha:.2f} of words contain a letter"
        if m["stop_words"] < s["min_stop_words"]:
            return False, "gopher_quality:stop_words", f"{int(m['stop_words'])} distinct stop words"
        return True


class GopherRepetitionFilter(Filter):
    name = "gopher_repetition"
    settings_help = {"datatrove_compat": COMPAT_HELP}

    def __init__(self, fields: list[str], dup_line_frac: float = 0.3, dup_para_frac: float = 0.3,
                 dup_line_char_frac: float = 0.2, dup_para_char_frac: float = 0.2,
                 top_n_grams: dict | None = None, dup_n_grams: dict | None = None, datatrove_compat: bool = False):
        super().__init__(fields)
        self.s = dict(locals())
        self.compat = datatrove_compat
        if datatrove_compat:
            spacy_english()
        self.top = {int(k): v for k, v in (top_n_grams or {2: 0.2, 3: 0.18, 4: 0.16}).items()}
        self.dup = {int(k): v for k, v in (dup_n_grams or {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11,
                                                            10: 0.10}).items()}

    def filter(self, text: str) -> Decision:
        s = self.s
        if not text:
            return False, "gopher_repetition:empty", "empty text"
        size = len(text)
        for unit, parts in (("para", _PARAGRAPHS.split(text.strip())), ("line", _LINES.split(text))):
            count, chars = duplicates(parts)
            if count / len(parts) > s[f"dup_{unit}_frac"]:
                return False, f"gopher_repetition:dup_{unit}_frac", f"{count} of {len(parts)} {unit}s repeat"
            if chars / size > s[f"dup_{unit}_char_frac"]:
                return False, f"gopher_repetition:dup_{unit}_char_frac", f"{chars / size:.2f} of chars repeat"
        words = datatrove_words(text) if self.compat else affix_words(text)
        for n, limit in self.top.items():
            grams = Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
            if grams:
                gram, count = grams.most_common(1)[0]
                covered = (sum(map(len, gram)) + n - 1) * count
                if (count > 1 or self.compat) and covered / size > limit:
                    return False, f"gopher_repetition:top_{n}_gram", f"{' '.join(gram)!r} x{count}"
        for n, limit in self.dup.items():
            frac = _repeated_ngram_chars(words, n) / size
            if frac > limit:
                return False, f"gopher_repetition:dup_{n}_gram", f"{frac:.2f} of chars in repeated {n}-grams"
        return True


def _repeated_ngram_chars(words: list[str], n: int) -> int:
    """Characters (without separators) of n-grams seen before, skipping past each repeat (datatrove's walk).
    An n-gram is its words joined without a separator, as datatrove keys it: ("a", "bc") repeats ("ab", "c")."""
    seen: set[str] = set()
    chars = i = 0
    while i < len(words) - n + 1:
        gram = "".join(words[i:i + n])
        if gram in seen:
            chars += len(gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars
