"""Math answers: GSM8K `#### N` and `\\boxed{...}` references checked with math-verify in a process pool.

math-verify's own timeouts use `signal.alarm`, which only works in a main thread, so checks run in worker
processes (each task runs in a worker's main thread); a per-item deadline here is the backstop, and a
worker that overruns it is terminated. Without math-verify a numeric/string normaliser is used.
"""

from __future__ import annotations

import asyncio
import re

from workbench.workers import process_pool, stop_pool

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def last_boxed(text: str) -> str | None:
    """The contents of the last `\\boxed{...}` (braces balanced), or None."""
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1:j]
    return None


def gold_answer(reference: str) -> str:
    """The final answer in a reference solution: after `####`, else the last \\boxed{}, else the text."""
    if "####" in reference:
        return reference.rsplit("####", 1)[1].strip().replace(",", "")
    boxed = last_boxed(reference)
    if boxed is not None:
        return boxed.strip()
    match = re.search(r"The answer is:?\s*(.+?)\s*$", reference, re.DOTALL)
    return (match.group(1) if match else reference).strip()


def _normalise(text: str) -> str:
    text = text.strip().strip("$").replace("\\!", "").replace(" ", "").rstrip(".")
    numbers = _NUMBER.findall(text)
    if len(numbers) == 1 and _NUMBER.fullmatch(text.replace("\\$", "").replace("$", "")):
        return str(float(numbers[0].replace(",", "")))
    return text


def _fallback(prediction: str, gold: str) -> bool:
    """Own normaliser: compare the predicted final answer (`####`, \\boxed, else last number) to the gold."""
    if "####" in prediction:
        predicted = prediction.rsplit("####", 1)[1].strip()
    elif last_boxed(prediction) is not None:
        predicted = last_boxed(prediction) or ""
    else:
        numbers = _NUMBER.findall(prediction)
        predicted = numbers[-1] if numbers else prediction
    return _normalise(predicted) == _normalise(gold)


def check_math(prediction: str | None, reference: str | None) -> tuple[bool | None, str]:
    """(verdict, detail) for one prediction; None when there is nothing to check against."""
    if not reference:
        return None, "no reference answer"
    if not prediction:
        return False, "empty prediction"
    gold = gold_answer(reference)
    try:
        from math_verify import parse, verify
    except ImportError:
        return _fallback(prediction, gold), f"gold {gold!r} (fallback normaliser)"
    if "####" in prediction:  # GSM8K-style predictions: the final answer follows the marker
        prediction = prediction.rsplit("####", 1)[1].replace(",", "")
    try:
        ok = verify(parse(f"${gold}$"), parse(prediction))
    except Exception as exc:  # noqa: BLE001 - an unparsable answer is a wrong answer, with the reason kept
        return False, f"gold {gold!r}; math-verify failed: {exc}"
    return bool(ok), f"gold {gold!r}"


async def verify_math(predictions: list[str | None], references: list[str | None], workers: int = 2,
                      deadline: float = 30.0) -> list[tuple[bool | None, str]]:
    """Verdicts in order; an item that overruns `deadline` seconds gets (None, 'verifier timed out')."""
    loop = asyncio.get_running_loop()
    pool = process_pool(workers)
    try:
        futures = [loop.run_in_executor(pool, check_math, p, r) for p, r in zip(predictions, references, strict=True)]
        results = []
        for future in futures:
            try:
                results.append(await asyncio.wait_for(future, deadline))
            except TimeoutError:
                results.append((None, "verifier timed out"))
        return results
    finally:
        stop_pool(pool)  # a stuck check must not outlive the run
