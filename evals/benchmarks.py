"""Which benchmarks `wb eval` can score, where their items come from, and how an answer is read.

A benchmark is a bundled name (`gsm8k`, `math500`: question/answer files under examples/data, checked
with the math verifier) or a prompt/answer file of the user's (`--prompt-field`, `--answer-field`,
`--verify`: math, exact, judge, or a user function); its name in the manifest is the bundled name or the
file's stem. `extracted_answer` is what maj@k votes on: for math the final answer the math verifier grades
(`llm.verify.math.final_answer`: a number in canonical form, None for a hedged or missing answer), else
the text after `####`, else the whole stripped completion.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workbench.errors import InputError
from workbench.workspace import bundled_data_dir

BUNDLED = {"gsm8k": ("gsm8k", "test.jsonl"), "math500": ("math500", "test.jsonl")}


@dataclass(frozen=True)
class Benchmark:
    name: str
    source: str
    prompt_field: str | None
    answer_field: str
    verifier: str  # math | exact | judge | package.module:function


def resolve_benchmarks(specs: list[str], prompt_field: str | None, answer_field: str | None, verify: str) -> list[Benchmark]:
    """The benchmarks named by `specs`; InputError for an unknown name, a missing file or a duplicate name."""
    if not specs:
        raise InputError("--benchmark needs at least one benchmark (gsm8k, math500, or a prompt/answer file)")
    if verify not in ("math", "exact", "judge") and ":" not in verify:
        raise InputError(f"--verify {verify}: expected math, exact, judge, or a user verifier as "
                         "package.module:function")
    out: list[Benchmark] = []
    for spec in specs:
        if spec in BUNDLED:
            folder, name = BUNDLED[spec]
            out.append(Benchmark(spec, str(bundled_data_dir() / folder / name), "question", "answer", "math"))
            continue
        path = Path(spec)
        if not path.exists():
            raise InputError(f"--benchmark {spec}: not a bundled benchmark ({', '.join(BUNDLED)}) and no such file "
                             "or directory")
        name = path.stem if path.is_file() else path.name
        out.append(Benchmark(name, spec, prompt_field, answer_field or "answer", verify))
    names = [b.name for b in out]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise InputError(f"--benchmark: two benchmarks are named {dup!r}; rename one of the files")
    return out


def extracted_answer(text: str | None, verifier: str) -> str | None:
    """The final answer a completion commits to, for majority voting (see the module docstring)."""
    if not text:
        return None
    if verifier == "math":
        from llm.verify.math import final_answer

        return final_answer(text).vote
    from llm.verify.exact import final_answer as exact_answer

    return exact_answer(text)
