"""Language mismatch: the response is in another language than the prompt.

Two checks. Script (vectorised): the share of the response's letters written in a script the prompt does
not use (CJK in a reply to a Latin-script prompt is the classic code-switch of reasoning models) above
`max_foreign_script` gives `language_mismatch:script_<script>`. Language (langid, as the `language` filter,
restricted to `languages` because langid's long tail confuses short English with Basque or Walloon): both
sides are identified after formulas, calculator annotations (`<<48/2=24>>`), code and digits are removed,
and only when both have `min_letters` letters and `min_score` confidence can they disagree
(`language_mismatch:response_<lang>`), so short or mixed replies are never dropped on a guess.
`prompt_language` is assumed for prompts too short to identify (a corpus known to be asked in English).
"""

from __future__ import annotations

import re
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.filters.conversation import PairFilter
from curate.step import Decision
from workbench.errors import require

NOT_PROSE = re.compile(r"```.*?```|`[^`]*`|<<[^>]*>>|\$\$.*?\$\$|\$[^$]*\$|\\\[.*?\\\]|\\\(.*?\\\)|\\[a-zA-Z]+"
                       r"|<[^>]{1,40}>|https?://\S+|[\d_]+", re.S)
SCRIPTS = {
    "latin": r"[A-Za-z\x{00C0}-\x{024F}]", "cjk": r"[\x{3040}-\x{30FF}\x{3400}-\x{9FFF}\x{AC00}-\x{D7AF}]",
    "cyrillic": r"[\x{0400}-\x{04FF}]", "arabic": r"[\x{0600}-\x{06FF}]", "devanagari": r"[\x{0900}-\x{097F}]",
    "greek": r"[\x{0370}-\x{03FF}]", "hebrew": r"[\x{0590}-\x{05FF}]", "thai": r"[\x{0E00}-\x{0E7F}]",
}
LANGUAGES = ["en", "zh", "es", "fr", "de", "ru", "ja", "pt", "it", "ko", "ar", "hi", "tr", "vi", "pl", "nl", "id"]


def prose(text: str) -> str:
    """The words of a text, without math, code, markup and digits."""
    return " ".join(NOT_PROSE.sub(" ", text).split())


@cache
def identifier(languages: tuple[str, ...]):
    """langid's identifier restricted to `languages` (loading the model takes a second, so it is shared)."""
    require("langid", package="langid")
    from langid.langid import LanguageIdentifier, model

    found = LanguageIdentifier.from_modelstring(model, norm_probs=True)
    found.set_languages(list(languages))
    return found


def script_counts(texts: pa.Array) -> np.ndarray:
    """(rows x scripts) letter counts, in the order of `SCRIPTS`."""
    return np.stack([pc.count_substring_regex(texts, p).to_numpy(zero_copy_only=False) for p in SCRIPTS.values()],
                    axis=1)


class LanguageMismatchFilter(PairFilter):
    """Reasons `language_mismatch:script_<script>` and `language_mismatch:response_<lang>`."""

    name = "language_mismatch"

    def __init__(self, fields: list[str], languages: list[str] | None = None, min_score: float = 0.99,
                 min_letters: int = 100, max_chars: int = 1000, max_foreign_script: float = 0.3,
                 prompt_language: str | None = None):
        super().__init__(fields)
        self.languages = list(languages or LANGUAGES)
        self.min_score = min_score
        self.min_letters = min_letters
        self.max_chars = max_chars
        self.max_foreign = max_foreign_script
        self.prompt_language = prompt_language  # assumed when a prompt is too short to identify

    def identify(self, text: str) -> tuple[str, float] | None:
        """(language, score) of a text's prose, or None when it is too short or identified unsurely."""
        words = prose(text)[: self.max_chars]
        if sum(c.isalpha() for c in words) < self.min_letters:
            return None
        lang, score = identifier(tuple(self.languages)).classify(words)
        return (lang, float(score)) if score >= self.min_score else None

    def decide_pairs(self, prompts: pa.Array, responses: pa.Array) -> list[Decision]:
        prompts, responses = pc.fill_null(prompts, ""), pc.fill_null(responses, "")
        asked, answered = script_counts(prompts), script_counts(responses)
        prompt_scripts = asked > 0
        foreign = np.where(prompt_scripts, 0, answered)
        share = foreign.sum(axis=1) / np.maximum(answered.sum(axis=1), 1)
        names = list(SCRIPTS)
        decisions: list[Decision] = [True] * len(share)
        for i in np.flatnonzero((share > self.max_foreign) & prompt_scripts.any(axis=1)):
            script = names[int(np.argmax(foreign[i]))]
            decisions[i] = (False, f"language_mismatch:script_{script}",
                            f"{share[i]:.0%} of the response's letters are {script}, a script the prompt does not use")
        for i in np.flatnonzero(np.array([d is True for d in decisions])):
            a = self.identify(prompts[int(i)].as_py())
            if a is None and self.prompt_language:
                a = (self.prompt_language, 1.0)
            b = self.identify(responses[int(i)].as_py()) if a else None
            if a and b and a[0] != b[0]:
                decisions[i] = (False, f"language_mismatch:response_{b[0]}",
                                f"prompt {a[0]} ({a[1]:.2f}), response {b[0]} ({b[1]:.2f})")
        return decisions
