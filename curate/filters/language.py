"""Language identification with langid.py, whose model ships inside the PyPI package (nothing is
downloaded at run time). Drops rows whose language is not wanted or is identified with low confidence."""

from __future__ import annotations

from curate.step import Decision, Filter
from workbench.errors import require


class LanguageFilter(Filter):
    name = "language"

    def __init__(self, fields: list[str], languages: list[str] | None = None, min_score: float = 0.65,
                 max_chars: int = 1000):
        super().__init__(fields)
        self.languages = set(languages or ["en"])
        self.min_score = min_score
        self.max_chars = max_chars
        self._identifier = None

    def identify(self, text: str) -> tuple[str, float]:
        """(language code, normalised probability) of the first `max_chars` characters."""
        if self._identifier is None:
            require("langid", package="langid")
            from langid.langid import LanguageIdentifier, model

            self._identifier = LanguageIdentifier.from_modelstring(model, norm_probs=True)
        lang, score = self._identifier.classify(text[: self.max_chars])
        return lang, float(score)

    def filter(self, text: str) -> Decision:
        if not text.strip():
            return False, "language:unknown", "no text to identify"
        lang, score = self.identify(text)
        if lang not in self.languages:
            return False, f"language:{lang}", f"identified as {lang} ({score:.2f}); wanted {sorted(self.languages)}"
        if score < self.min_score:
            return False, "language:low_confidence", f"{lang} at {score:.2f} < {self.min_score}"
        return True
