"""Answer verifiers: `math` (the response's final answer only, `llm.verify.math`), `exact` (the final
answer as a string), `code` (only the tests' own completion counts, in a sandbox), `judge` (an LLM rubric through the generation layer), or a user
`package.module:function`. Verdicts are columns; nothing is dropped here.

`verify_units` checks every `ok` unit that has no verdict in the ledger yet and records verdicts there,
so verification resumes too. Truncated and failed units get no verdict (null). A judge request that failed
at its endpoint is recorded (null, `judge failed: ...`) and asked again by the next run.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from llm.generator import Generator
from llm.ledger import Ledger
from llm.verify.judge import judge_failed

VERIFIERS = ("none", "math", "exact", "code", "judge")  # or a user package.module:function


@dataclass(frozen=True)
class VerifyOptions:
    """What a verifier needs, and nothing of the command that calls it."""

    kind: str = "none"  # none | math | exact | code | judge | package.module:function
    workers: int = 2  # processes for math/code
    code_timeout: float = 10.0  # seconds per code run
    code_memory_mb: int = 1024  # memory cap per code run
    sandbox: str = "bwrap"  # bwrap | none (llm.verify.code)
    record_as: str | None = None  # the ledger's name for these verdicts (default: kind), e.g. judge:<model>

    @property
    def name(self) -> str:
        """The verifier's name in the ledger: a judge named by its model is asked afresh when the model changes."""
        return self.record_as or self.kind

    @classmethod
    def of(cls, cfg) -> VerifyOptions:
        """The options of a job config built on `JobOptions` (distill, prefs)."""
        return cls(cfg.verify, cfg.verify_workers, cfg.code_timeout, cfg.code_memory_mb, cfg.sandbox)


def judge_usage(judge) -> tuple[int, int, int, int, int, int]:
    """A judge generator's (requests, prefill, sampled) sent and (requests, prefill, sampled) its cache answered."""
    s = judge.stats
    return (s.requests, s.prefill_tokens, s.sampled_tokens, s.cached_requests, s.cached_prefill_tokens,
            s.cached_sampled_tokens)


def inline_verdicts(kind: str, prompts: list, completions: list[str | None],
                    answers: list[str | None]) -> list[tuple[bool | None, str]]:
    """Verdicts computed in this process: `math` (one check at a time, so only where `signal.alarm` works:
    the main thread), `exact`, or a user `package.module:function`. For training-time evaluation and the
    cheap verifiers of `verify_many`."""
    if kind == "math":
        from llm.verify.math import check_math, prompt_text

        return [check_math(c, a, prompt_text(p)) for p, c, a in zip(prompts, completions, answers, strict=True)]
    if kind == "exact":
        from llm.verify.exact import check_exact

        return [check_exact(c, a) for c, a in zip(completions, answers, strict=True)]
    if ":" in kind:
        from llm.verify.user import verify_user

        return verify_user(kind, prompts, completions, answers)
    raise ValueError(f"verifier {kind!r} does not run inline")


async def verify_units(opts: VerifyOptions, data: pa.Table, ledger: Ledger, judge: Generator | None = None) -> None:
    """Verify what is left to verify with `opts.kind`; verdicts go to the ledger in batches. `judge` is the
    generator the `judge` verifier asks."""
    await verify_many(opts, [(data, ledger)], judge)


async def verify_many(opts: VerifyOptions, parts: list[tuple[pa.Table, Ledger]], judge: Generator | None = None) -> None:
    """`verify_units` over several (units, ledger) parts in one verifier call (one process pool), e.g. the
    models of a prefs run; each part's verdicts go to its own ledger."""
    todos, keys, owners = [], [], []
    for part, (data, ledger) in enumerate(parts):
        seen = {k for k, (_, detail) in ledger.verdicts(opts.name).items() if not judge_failed(detail)}
        todo = data.filter(pc.equal(data.column("status"), "ok"))
        found = list(zip(todo.column("prompt_id").to_pylist(), todo.column("sample_index").to_pylist(), strict=True))
        rows = [j for j, k in enumerate(found) if k not in seen]
        todos.append(todo.take(pa.array(rows, pa.int64())).select(["prompt", "content", "answer", "tests"]))
        keys += [found[j] for j in rows]
        owners += [part] * len(rows)
    if not keys:
        return
    todo = pa.concat_tables(todos)
    if opts.kind == "math":
        from llm.verify.math import prompt_text, verify_math

        verdicts = await verify_math(todo.column("content").to_pylist(), todo.column("answer").to_pylist(),
                                     opts.workers, questions=[prompt_text(p) for p in todo.column("prompt").to_pylist()])
    elif opts.kind == "exact" or ":" in opts.kind:
        verdicts = inline_verdicts(opts.kind, todo.column("prompt").to_pylist(), todo.column("content").to_pylist(),
                                   todo.column("answer").to_pylist())
    elif opts.kind == "code":
        from llm.verify.code import verify_code

        verdicts = await verify_code(todo.column("content").to_pylist(), todo.column("tests").to_pylist(),
                                     opts.code_timeout, opts.code_memory_mb, opts.workers, opts.sandbox)
    elif opts.kind == "judge":
        from llm.verify.judge import verify_judge

        if judge is None:
            raise ValueError("the judge verifier needs a judge generator")
        before = judge_usage(judge)
        judge.attach(parts[0][1])  # a judge asked through batches resumes them as generation does
        verdicts = await verify_judge(todo, judge)
        # judge tokens are part of the run's usage (kept in the first part's ledger, so a resume keeps them)
        after = judge_usage(judge)
        parts[0][1].add_usage(*(a - b for a, b in zip(after[:3], before[:3], strict=True)), judge.usage_category)
        parts[0][1].add_usage(*(a - b for a, b in zip(after[3:], before[3:], strict=True)), "cached")
        parts[0][1].flush()
    else:
        raise ValueError(f"unknown verifier {opts.kind!r}")
    for part, (_, ledger) in enumerate(parts):
        mine = [(p, i, v, d) for (p, i), (v, d), o in zip(keys, verdicts, owners, strict=True) if o == part]
        if mine:
            ledger.record_verdicts(opts.name, mine)
