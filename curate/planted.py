"""Broken variants of good question/answer rows, planted to measure post-training filters.

Each kind is a failure seen in distilled data and has the filter meant to catch it (`TARGETS`); the
`code_ok` kind is a control (a valid Python block) that no filter should drop. Used by
`bench/post_training_filters.py` and the tests; deterministic for a seed.
"""

from __future__ import annotations

import random
import re

TARGETS = {
    "loop": "degenerate_repetition", "loop_then_answer": "degenerate_repetition",
    "truncated": "truncated_reasoning", "unclosed_think": "truncated_reasoning",
    "refusal": "refusal", "boilerplate": "refusal", "other_language": "language_mismatch",
    "other_script": "language_mismatch", "bad_code": "code_syntax", "empty": "turns", "terse": "length_ratio",
}
CONTROLS = ("code_ok",)

REFUSALS = ["I'm sorry, but I can't help with that request.",
            "I apologize, but I cannot assist with solving this problem.",
            "I'm unable to provide an answer to this question."]
FOREIGN = {
    "fr": "Résolvons ce problème étape par étape. D'abord, nous calculons la quantité demandée dans l'énoncé, "
          "puis nous additionnons les résultats obtenus pour chaque partie. Ensuite, nous vérifions que le "
          "calcul est correct et que la réponse a du sens. La réponse finale est donc {n}.",
    "es": "Resolvamos este problema paso a paso. Primero, calculamos la cantidad que se pide en el enunciado y "
          "después sumamos los resultados de cada parte. Luego comprobamos que el cálculo es correcto y que la "
          "respuesta tiene sentido. Por lo tanto, la respuesta final es {n}.",
    "de": "Lösen wir diese Aufgabe Schritt für Schritt. Zuerst berechnen wir die Menge, nach der in der Aufgabe "
          "gefragt wird, und addieren dann die Ergebnisse der einzelnen Teile. Danach prüfen wir, ob die "
          "Rechnung stimmt und die Antwort sinnvoll ist. Die endgültige Antwort ist also {n}.",
}
CHINESE = "我们一步一步地解决这个问题。首先计算题目中要求的数量，然后把每一部分的结果加起来。最后检查计算是否正确。所以最终答案是 {n}。"


def final_number(answer: str) -> str:
    found = re.search(r"####\s*(\S+)", answer)
    return found.group(1) if found else "0"


def broken(kind: str, question: str, answer: str, rng: random.Random) -> tuple[str, str]:
    """(question, answer) of the `kind` variant of one good row."""
    lines = [line for line in answer.split("\n") if not line.startswith("####")] or [answer]
    body = "\n".join(lines)
    n = final_number(answer)
    if kind == "loop":
        unit = rng.choice(lines).split()
        unit = unit[: max(4, min(len(unit), rng.randint(4, 14)))]
        repeats = rng.randint(6, 20)
        loop = " ".join(unit * repeats + unit[: rng.randint(0, len(unit) - 1)])
        return question, body + "\nWait, let me check again. " + loop
    if kind == "loop_then_answer":
        unit = "Let me recompute this step to be sure: " + rng.choice(lines)
        return question, body + "\n" + "\n".join([unit] * rng.randint(25, 40)) + f"\n#### {n}"
    if kind == "truncated":
        cut = rng.randint(len(body) // 4, max(len(body) // 4 + 1, 3 * len(body) // 4))
        return question, body[:cut]
    if kind == "unclosed_think":
        return question, "<think>\nLet me think about this carefully.\n" + body[: max(20, len(body) // 2)]
    if kind == "refusal":
        return question, rng.choice(REFUSALS)
    if kind == "boilerplate":
        return question, "As an AI language model, I can walk you through it.\n" + answer
    if kind == "other_language":
        return question, FOREIGN[rng.choice(sorted(FOREIGN))].format(n=n) + f"\n#### {n}"
    if kind == "other_script":
        return question, CHINESE.format(n=n) + f"\n#### {n}"
    if kind == "bad_code":
        code = f"```python\ndef solve()\n    return {n}\nprint(solve()\n```"
        return question, f"{body}\nIn code:\n{code}\n#### {n}"
    if kind == "code_ok":
        code = f"```python\ndef solve():\n    return {n!r}\n\nprint(solve())\n```"
        return question, f"{body}\nIn code:\n{code}\n#### {n}"
    if kind == "empty":
        return (question, "  ") if rng.random() < 0.5 else ("", answer)
    if kind == "terse":
        return question, n
    raise ValueError(f"unknown planted kind {kind!r}")


def plant(rows: list[dict], per_kind: int, seed: int = 0, question: str = "question",
          answer: str = "answer") -> list[dict]:
    """`rows` (kind `clean`) followed by `per_kind` broken variants of random rows for every kind.

    Every output row has `id` and `kind`; a variant's id names the row it was made from."""
    rng = random.Random(seed)
    out = [{"id": row.get("id", f"row-{i}"), question: row[question], answer: row[answer], "kind": "clean"}
           for i, row in enumerate(rows)]
    for kind in [*TARGETS, *CONTROLS]:
        for k in range(per_kind):
            i = rng.randrange(len(rows))
            q, a = broken(kind, rows[i][question], rows[i][answer], rng)
            out.append({"id": f"{out[i]['id']}~{kind}{k}", question: q, answer: a, "kind": kind})
    return out
