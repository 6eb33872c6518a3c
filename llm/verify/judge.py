"""LLM-judge verification: a rubric prompt through the same generation layer (endpoints, retries, 429s).

The judge sees the question, the reference answer when there is one, and the response (not the reasoning),
and must end with `VERDICT: CORRECT` or `VERDICT: INCORRECT`: only a verdict on the reply's last non-empty
line counts, and a `VERDICT:` the response wrote itself is shown to the judge defused ("verdict (written
by the response):"), so a response cannot hand the judge a verdict line to echo. No verdict gives null. A request that
failed at the judge's endpoint gives null with a `judge failed: ...` detail, and a re-run asks again.
`judge_spec` is how every job (distill, prefs, eval) builds its judge's endpoint from its `--judge-*` flags
and the shared endpoint options, and `judge_generator` how it opens it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import pyarrow as pa

from llm.backends.base import SamplingParams
from llm.generator import Generator, RetryPolicy
from llm.spec import EndpointSpec, open_generator
from workbench.records import message_text

RUBRIC = """You are grading a response to a question.
Question:
{question}

Reference answer (may be empty):
{reference}

Response:
{response}

Judge whether the response's final answer is correct and its reasoning sound; with a reference answer,
the final answer must agree with it. Give a one-paragraph justification, then a last line that is exactly
`VERDICT: CORRECT` or `VERDICT: INCORRECT`."""
_VERDICT = re.compile(r"VERDICT:\s*(CORRECT|INCORRECT)", re.IGNORECASE)
_WRITTEN_VERDICT = re.compile(r"VERDICT\s*:", re.IGNORECASE)
JUDGE_PARAMS = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=2048)
JUDGE_FAILED = "judge failed: "  # the detail of a verdict the judge's endpoint never gave (retried on re-run)


def judge_generator(spec: EndpointSpec, policy: RetryPolicy, like: Generator | None = None) -> Generator:
    """A generator over the judge's endpoints, sampling greedily with `JUDGE_PARAMS`; with `like` (the run's
    generator) it shares that one's response cache and cost cap. Close it with `await judge.aclose()`."""
    cache = like.cache.cache if like is not None and like.cache is not None else None
    judge, _ = open_generator(spec, JUDGE_PARAMS, policy, cache=cache, cap=like.cap if like is not None else None)
    return judge


def judge_failed(detail: str | None) -> bool:
    """Whether a verdict's detail records a request that failed at the judge (not a judge's answer)."""
    return bool(detail) and detail.startswith(JUDGE_FAILED)


def judge_messages(prompt: list[dict], reference: str | None, response: str | None,
                   rubric: str = RUBRIC) -> list[dict]:
    """The judge's one user message: `rubric` filled with the question, reference and response."""
    question = message_text(prompt, ("user",), "\n")
    shown = _WRITTEN_VERDICT.sub("verdict (written by the response):", response or "")
    return [{"role": "user", "content": rubric.format(question=question, reference=reference or "",
                                                       response=shown)}]


def parse_verdict(text: str | None) -> bool | None:
    """True/False from a `VERDICT:` on the reply's last non-empty line, else None."""
    lines = [line for line in (text or "").splitlines() if line.strip()]
    found = _VERDICT.findall(lines[-1]) if lines else []
    return None if not found else found[-1].upper() == "CORRECT"


async def judge_units(units: pa.Table, judge: Generator, rubric: str, parse: Callable[[str], object | None],
                      what: str = "verdict") -> list[tuple[object | None, str]]:
    """(parse(judge reply), detail) for each row of `units` (prompt, answer, content), in order; the
    verifier's CORRECT/INCORRECT and prefs/' 1-10 rubric scores both go through here."""

    async def one(prompt, reference, content) -> tuple[object | None, str]:
        outcome = await judge.complete(judge_messages(prompt, reference, content, rubric), 1, JUDGE_PARAMS)
        if outcome.completion is None:
            return None, f"{JUDGE_FAILED}{outcome.error}"
        text = outcome.completion.choices[0].content or ""
        value = parse(text)
        return value, (text if value is not None else f"judge gave no {what}: {text[-200:]}")[-1000:]

    return list(await asyncio.gather(*(one(p, r, c) for p, r, c in zip(
        units.column("prompt").to_pylist(), units.column("answer").to_pylist(),
        units.column("content").to_pylist(), strict=True))))


async def verify_judge(units: pa.Table, judge: Generator) -> list[tuple[bool | None, str]]:
    """CORRECT/INCORRECT verdicts from `judge` for each row of `units` (prompt, answer, content)."""
    return await judge_units(units, judge, RUBRIC, parse_verdict)


def judge_spec(cfg, main: EndpointSpec) -> EndpointSpec:
    """The judge's `EndpointSpec` for a command with `judge_model`, `judge_base_url` and `judge_backend` fields
    on its endpoint options (distill, prefs, eval): what they leave unset comes from `main`, the command's
    model, and everything else (concurrency, timeout, rate budget) is the command's."""
    from llm.options import endpoint_spec

    return endpoint_spec(cfg, cfg.judge_model or "", cfg.judge_base_url, cfg.judge_backend, "judge", like=main)


def open_judge(cfg, main: EndpointSpec, gen: Generator) -> Generator:
    """The judge's generator: `gen` itself (over `main`) when the judge is the same model on the same
    endpoints. Its tokens are counted in the run's ledger by `verify_units`."""
    spec = judge_spec(cfg, main)
    return gen if spec == main else judge_generator(spec, gen.policy, gen)
