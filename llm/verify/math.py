"""Math answers: the response's *final answer* against a reference's (GSM8K `#### N`, MATH `\\boxed{}`).

One extraction (`final_answer`) serves `wb eval`, `wb distill --verify math`, `wb prefs` and `--reward math`.
Policy, in order (a response that fails a step is wrong, with the reason in the verdict's detail):
1. Only the text after the last `</think>` counts; an empty response is wrong.
2. The final answer is the *last* explicit marker: the rest of a `#### x` line, the last `\\boxed{x}`, or
   the rest of the sentence after "the answer is x" / "final answer: x" (so of two different `####` lines
   the last counts). Without a marker it is the last sentence that states a number and is not a question:
   the number after its last `=`, else its last number, unless that number is an operand (`4 + 20`).
3. Against a numeric reference the final answer must be exactly one number (units, `$`, `1,200`, `-3`,
   `3/4`, `\\frac{3}{4}`, `25%` are fine; `4 + 20`, or `3 hours 20 minutes`, is not one number), compared
   as a number: `1,200` = `1200`, `0.5` = `\\frac12`, `25%` = `25` = `0.25`, within 1e-6 relative. The gold
   digits inside a larger number (`240` for `24`) are a different number.
4. Hedged: two different numbers with an alternative or a correction between them ("or", "wait",
   "actually", "no", "maybe", "perhaps", "possibly", "either", "rather", "instead", "sorry", "oops",
   "correction", "alternatively", "I mean"), where the second is the final answer or comes after it in the
   same sentence ("19 or 21", "24, no wait, 23"). Retracted: a later sentence that opens with one of
   those words (in its first three) and whose last number differs from the final answer ("#### 24. Wait,
   it's 23.", "... Or maybe 23."). Both are wrong, whatever the numbers; other later sentences ("Hope this
   helps!", "Ask if you need 2 more examples or a proof.") change nothing.
5. Given the question, a final answer read from a sentence of four words or more copied word for word
   out of it (step 2 without a marker) is wrong: restating "The book costs $4." does not answer 4.
6. A non-numeric reference (an expression, a tuple, an interval) is compared to the final answer by
   math-verify; a final answer with an alternative word in it is hedged. math-verify runs in worker
   processes (its `signal.alarm` timeouts need a main thread), with a per-item deadline as the backstop.
   Without math-verify, non-numeric answers are compared as normalised strings.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from fractions import Fraction

from workbench.records import message_text
from workbench.workers import process_pool, stop_pool

# A number as written: sign, `$`, `1,200` or digits, decimals, `/ denominator` or a mixed `3 1/2`, `%`.
# Not inside a word (`x2`, `H2O`) or after a decimal point.
_NUM = re.compile(r"(?<![\w.])(?P<sign>[-+]?)\$?(?P<int>\d{1,3}(?:,\d{3})+(?![,\d])|\d+)"
                  r"(?:\s+(?P<mixn>\d+)\s*/\s*(?P<mixd>\d+)(?![\d.])"  # a mixed number: 3 1/2
                  r"|(?P<dec>\.\d+)?(?:\s*/\s*(?P<den>\d+(?:\.\d+)?)(?![\d.]))?)(?P<pct>\s*%)?")
_HEDGE = re.compile(r"\b(?:or|wait|actually|no|maybe|perhaps|possibly|either|rather|instead|sorry|oops|"
                    r"correction|alternatively|i mean)\b", re.IGNORECASE)
_PHRASE = re.compile(r"\b(?:final answer|the answer|answer)\s*(?:is|:|=)\s*:?", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")
# Where the answer's own clause ends: "24 apples, since 4 + 20 = 24" grades "24 apples".
_CLAUSE_END = re.compile(r";|,\s+(?=[A-Za-z])|\s\(?(?:because|since|as|which|so|for|from|given|when|where|"
                         r"and|but|after|before|if|not)\b", re.IGNORECASE)
_OPERAND = re.compile(r"[\d)]\s*(?:[-+*/×÷^x]|\\times|\\cdot)\s*\$?$")
_LATEX_TEXT = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}(?:\^\{?\d\}?)?")
_UNITS = re.compile(r"(?:\s+[A-Za-z]{2,})+\.?$")  # "864 inches", "5 cm": words after a number
_LATEX_FRAC = re.compile(r"\\[dt]?frac\s*(?:\{\s*([-\d.]+)\s*\}|(\d))\s*(?:\{\s*([-\d.]+)\s*\}|(\d))")


@dataclass(frozen=True)
class Number:
    value: Fraction
    percent: bool = False

    def __str__(self) -> str:
        v = self.value
        text = str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"
        return text + ("%" if self.percent else "")


@dataclass(frozen=True)
class FinalAnswer:
    """The final answer a response commits to. `text` is None when it has none (`problem` says why: empty,
    hedged, retracted, no number...); `number` is set when the answer is exactly one number."""

    text: str | None
    marker: str = ""  # ####, boxed, phrase, sentence
    number: Number | None = None
    problem: str = ""
    sentence: str = ""  # the sentence a `sentence` answer was read from

    @property
    def vote(self) -> str | None:
        """The answer maj@k votes on: the number in canonical form, else the answer text."""
        if self.problem or self.text is None:
            return None
        return str(self.number) if self.number is not None else self.text.strip()


def last_boxed(text: str) -> str | None:
    """The contents of the last `\\boxed{...}` (braces balanced), or None."""
    found = _boxes(text)
    return found[-1][2] if found else None


def _boxes(text: str) -> list[tuple[int, int, str]]:
    """(start, end, contents) of every balanced `\\boxed{...}` / `\\fbox{...}`."""
    out = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth = 0
        for j in range(m.end() - 1, len(text)):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                out.append((m.start(), j + 1, text[m.end():j]))
                break
    return out


def gold_answer(reference: str) -> str:
    """The final answer in a reference solution: after `####`, else the last \\boxed{}, else the text."""
    if "####" in reference:
        return reference.rsplit("####", 1)[1].strip().replace(",", "")
    boxed = last_boxed(reference)
    if boxed is not None:
        return boxed.strip()
    match = re.search(r"The answer is:?\s*(.+?)\s*$", reference, re.DOTALL)
    return (match.group(1) if match else reference).strip()


def _clean(text: str) -> str:
    """LaTeX dressing off, so that numbers read as numbers: `\\text{}` keeps its words, `\\frac{a}{b}` -> a/b."""
    text = text.replace("−", "-").replace("\\%", "%").replace("\\$", "$")
    text = re.sub(r"(?<=\d),\\!\s*(?=\d)", ",", text)  # LaTeX thousands: 11,\! 111 is 11,111
    for token in ("\\left", "\\right", "\\displaystyle", "^\\circ", "^{\\circ}"):
        text = text.replace(token, "")
    text = re.sub(r"(?<!\\)\\[,;:! ]|~", " ", text)  # spacing; not the `\\` of a matrix row
    text = _LATEX_TEXT.sub(r" \1 ", text)
    return _LATEX_FRAC.sub(lambda m: f"{m.group(1) or m.group(2)}/{m.group(3) or m.group(4)}", text)


def _numbers(text: str) -> list[tuple[re.Match, Number]]:
    out = []
    for m in _NUM.finditer(text):
        value = Fraction(m.group("int").replace(",", "") + (m.group("dec") or ""))
        if m.group("den"):
            den = Fraction(m.group("den"))
            if den == 0:
                continue
            value /= den
        if m.group("mixd"):
            if int(m.group("mixd")) == 0:
                continue
            value += Fraction(int(m.group("mixn")), int(m.group("mixd")))
        out.append((m, Number(-value if m.group("sign") == "-" else value, bool(m.group("pct")))))
    return out


def as_number(text: str) -> Number | None:
    """`text` read as exactly one number and nothing else (`$1,200`, `\\frac{1}{2}`, `25\\%`), else None."""
    text = _UNITS.sub("", _clean(text).strip().strip("$").strip().rstrip("."))
    found = _numbers(text)
    if len(found) == 1 and found[0][0].group(0).strip("$").strip() == text.replace("$", "", 1).strip():
        return found[0][1]
    return None


def same_number(a: Number, b: Number) -> bool:
    """Equal as numbers; a percentage also equals its hundredth (`25%` = `25` = `0.25`)."""
    def values(n: Number) -> list[Fraction]:
        return [n.value, n.value / 100] if n.percent else [n.value]

    return any(x == y or abs(x - y) <= Fraction(1, 10**6) * max(1, abs(y)) for x in values(a) for y in values(b))


def _sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence: split at `.!?` before whitespace, and at newlines."""
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        spans.append((start, m.end()))
        start = m.end()
    spans.append((start, len(text)))
    return [(s, e) for s, e in spans if text[s:e].strip()]


def _sentence_at(sentences: list[tuple[int, int]], pos: int) -> tuple[int, int]:
    return next(((s, e) for s, e in sentences if s <= pos < e), sentences[-1])


def _marker(text: str, sentences: list[tuple[int, int]]) -> tuple[str, int, int, str] | None:
    """The last explicit marker: (kind, where it starts, where its answer ends, the answer text)."""
    found = []
    for m in re.finditer(r"####", text):
        end = text.find("\n", m.end())
        end = len(text) if end < 0 else end
        found.append(("####", m.start(), end, text[m.end():end]))
    found += [("boxed", start, end, inner) for start, end, inner in _boxes(text)]
    for m in _PHRASE.finditer(text):
        end = _sentence_at(sentences, m.end())[1] if m.end() < len(text) else len(text)
        rest = text[m.end():end]
        if rest.strip(" .!?\n$"):  # "what the answer is." states nothing
            found.append(("phrase", m.start(), end, rest.rstrip().rstrip(".!")))
    return max(found, key=lambda f: f[1]) if found else None


def _clause(answer: str) -> str:
    """The answer's own clause, cut after its first digit ("as follows: 24, since ..." keeps "as follows: 24")."""
    digit = re.search(r"\d", answer)
    cut = _CLAUSE_END.search(answer, digit.start()) if digit else None
    return answer[:cut.start()] if cut else answer


def _after_equals(text: str) -> str:
    """The result of an equation ("x = 5" is 5)."""
    return text.rsplit("=", 1)[1] if "=" in text else text


def _hedge(text: str, after: int) -> str:
    """'' unless two different numbers have an alternative/correction word between them, the second at or
    after `after` (the final answer's position)."""
    found = _numbers(text)
    for (m1, n1), (m2, n2) in zip(found, found[1:], strict=False):
        if m2.start() >= after and not same_number(n1, n2) and _HEDGE.search(text[m1.end():m2.start()]):
            return f"hedged: {n1} and {n2} with {_HEDGE.search(text[m1.end():m2.start()]).group(0)!r} between"
    return ""


def final_answer(response: str | None) -> FinalAnswer:
    """The final answer `response` commits to, by the policy in the module docstring."""
    text = (response or "").rsplit("</think>", 1)[-1]
    if not text.strip():
        return FinalAnswer(None, problem="empty response")
    cleaned = _clean(text)
    sentences = _sentences(cleaned)
    mark = _marker(cleaned, sentences)
    if mark is not None:
        kind, start, end, answer = mark
        piece = answer if kind == "boxed" else _clause(answer)  # the answer as written
        numbers = {str(n): n for _, n in _numbers(_after_equals(piece))}
        number = next(iter(numbers.values())) if len(numbers) == 1 else None
        window_start = _sentence_at(sentences, start)[0]
    else:
        stated = [(s, e) for s, e in sentences if _numbers(cleaned[s:e]) and not cleaned[s:e].rstrip().endswith("?")]
        if not stated:
            return FinalAnswer(None, problem="no final answer: no sentence but a question states a number")
        start, end = stated[-1]
        kind, window_start, sentence = "sentence", start, cleaned[start:end].rstrip().rstrip(".!")
        if "=" in sentence:
            piece = _clause(sentence.rsplit("=", 1)[1])
            numbers = {str(n): n for _, n in _numbers(piece)}
            if len(numbers) != 1:
                return FinalAnswer(None, kind, problem=f"no final answer: {piece.strip()!r} after the last '=' "
                                                       "is not one number")
            number = next(iter(numbers.values()))
        else:
            m, number = _numbers(sentence)[-1]
            if _OPERAND.search(sentence[:m.start("int")]):
                return FinalAnswer(None, kind, problem=f"no final answer: the last number of {sentence.strip()!r} "
                                                       "is an operand, not a result")
            piece = m.group(0)
    problem = _hedge(cleaned[window_start:_sentence_at(sentences, max(start, end - 1))[1]], start - window_start)
    if not problem and number is None and _HEDGE.search(piece):
        problem = f"hedged: {piece.strip()!r}"
    if not problem and number is not None:
        problem = _retraction(cleaned, sentences, end, number)
    sentence = cleaned[window_start:end] if kind == "sentence" else ""
    return FinalAnswer(piece.strip(), kind, number, problem, sentence)


def _retraction(text: str, sentences: list[tuple[int, int]], after: int, answer: Number) -> str:
    for s, e in sentences:
        if s < after:
            continue
        sentence = text[max(s, after):e]
        found = _numbers(sentence)
        word = _HEDGE.search(" ".join(sentence.split()[:3]))  # it opens with the correction
        if word and found and not same_number(found[-1][1], answer):
            return f"retracted: {answer} then {word.group(0)!r} ... {found[-1][1]} after the final answer"
    return ""


def check_math(prediction: str | None, reference: str | None, question: str | None = None) -> tuple[bool | None, str]:
    """(verdict, detail) for one prediction by the module's policy; None when there is no reference.
    With the `question`, a final answer read from a sentence copied out of it (no marker) is wrong."""
    if not reference:
        return None, "no reference answer"
    gold = gold_answer(reference)
    final = final_answer(prediction)
    if final.problem or final.text is None:
        return False, f"gold {gold!r}; {final.problem}"
    if question and final.marker == "sentence" and _copied(final.sentence, question):
        return False, f"gold {gold!r}; restates the question: {final.sentence.strip()[:200]!r}"
    gold_number = as_number(gold)
    if gold_number is not None:
        if final.number is None:
            return False, f"gold {gold!r}; final answer {final.text!r} is not one number"
        return same_number(final.number, gold_number), f"gold {gold!r}; final answer {final.number}"
    return _equivalent(final, gold), f"gold {gold!r}; final answer {final.text!r}"


def _equivalent(final: FinalAnswer, gold: str) -> bool:
    """A non-numeric final answer against a non-numeric gold: math-verify, else normalised strings."""
    answer = final.text or ""
    try:
        from math_verify import parse, verify
    except ImportError:
        return _normalise(answer) == _normalise(gold)
    try:
        return bool(verify(parse(f"${gold}$"), parse(f"$\\boxed{{{answer.strip('$')}}}$")))
    except Exception:  # noqa: BLE001 - an unparsable answer is a wrong answer
        return False


def _squash(text: str) -> str:
    """Lower case, single spaces, no punctuation ending a word."""
    return " ".join(re.sub(r"[.,!?;:](?=\s|$)", "", text.lower()).split())


def _copied(sentence: str, question: str) -> bool:
    """The sentence, four words or more, appears word for word in the question (a bare "15." does not count)."""
    words = _squash(sentence)
    return len(words.split()) >= 4 and f" {words} " in f" {_squash(_clean(question))} "


def prompt_text(prompt) -> str:
    """The text of a prompt as the verifiers get it: a string, or the contents of its chat messages."""
    if isinstance(prompt, list | tuple):  # content parts that are not text are left out
        return message_text([m for m in prompt if isinstance(m, dict) and isinstance(m.get("content"), str)],
                            sep="\n")
    return prompt if isinstance(prompt, str) else ""


def _normalise(text: str) -> str:
    return re.sub(r"\s+", "", _clean(text)).strip("$").rstrip(".")


async def verify_math(predictions: list[str | None], references: list[str | None], workers: int = 2,
                      deadline: float = 30.0, questions: list[str | None] | None = None) -> list[tuple[bool | None, str]]:
    """Verdicts in order; an item that overruns `deadline` seconds gets (None, 'verifier timed out')."""
    loop = asyncio.get_running_loop()
    pool = process_pool(workers)
    questions = questions or [None] * len(predictions)
    try:
        futures = [loop.run_in_executor(pool, check_math, p, r, q)
                   for p, r, q in zip(predictions, references, questions, strict=True)]
        results = []
        for future in futures:
            try:
                results.append(await asyncio.wait_for(future, deadline))
            except TimeoutError:
                results.append((None, "verifier timed out"))
        return results
    finally:
        stop_pool(pool)  # a stuck check must not outlive the run
