"""Exact-string answers: the final answer after `####` (else the whole text), compared character for character.

The math verifier compares numbers, so `0011` equals `011` and `1,000` equals `1000`: right for math, wrong
for answers that are strings (a sorted digit sequence, a code, a word). This one only strips surrounding
whitespace; it is cheap, so it runs inline (no process pool).
"""

from __future__ import annotations


def final_answer(text: str | None) -> str | None:
    """The text after the last `####`, else the whole text, stripped; None for no text."""
    if text is None:
        return None
    return (text.rsplit("####", 1)[1] if "####" in text else text).strip()


def check_exact(prediction: str | None, reference: str | None) -> tuple[bool | None, str]:
    """(verdict, detail): None when there is no reference, False for an empty prediction."""
    gold = final_answer(reference)
    if not gold:
        return None, "no reference answer"
    predicted = final_answer(prediction)
    if not predicted:
        return False, f"gold {gold!r}; empty prediction"
    return predicted == gold, f"gold {gold!r}"
