"""LLM-judge verification: a rubric prompt through the same generation layer (endpoints, retries, 429s).

The judge sees the question, the reference answer when there is one, and the response (not the reasoning),
and must end with `VERDICT: CORRECT` or `VERDICT: INCORRECT`; no verdict line gives null.
"""

from __future__ import annotations

import asyncio
import re

import pyarrow as pa

from distill_data.backends.base import SamplingParams
from distill_data.generation import Generator

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
JUDGE_PARAMS = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=2048)


def judge_messages(prompt: list[dict], reference: str | None, response: str | None) -> list[dict]:
    question = "\n".join(m["content"] for m in prompt if m["role"] == "user")
    return [{"role": "user", "content": RUBRIC.format(question=question, reference=reference or "",
                                                       response=response or "")}]


def parse_verdict(text: str | None) -> bool | None:
    found = _VERDICT.findall(text or "")
    return None if not found else found[-1].upper() == "CORRECT"


async def verify_judge(cfg, units: pa.Table, gen: Generator) -> list[tuple[bool | None, str]]:
    judge = gen
    if cfg.judge_model or cfg.judge_base_url:
        from distill_data.pipeline import build_endpoints

        endpoints, _ = build_endpoints(cfg, cfg.judge_model or cfg.model, cfg.judge_base_url or cfg.base_url)
        judge = Generator(endpoints, JUDGE_PARAMS, gen.policy)

    async def one(prompt, reference, content) -> tuple[bool | None, str]:
        outcome = await judge.complete(judge_messages(prompt, reference, content), 1, JUDGE_PARAMS)
        if outcome.completion is None:
            return None, f"judge failed: {outcome.error}"
        text = outcome.completion.choices[0].content or ""
        verdict = parse_verdict(text)
        return verdict, (text if verdict is not None else f"judge gave no verdict: {text[-200:]}")[-1000:]

    try:
        return list(await asyncio.gather(*(one(p, r, c) for p, r, c in zip(
            units.column("prompt").to_pylist(), units.column("answer").to_pylist(),
            units.column("content").to_pylist(), strict=True))))
    finally:
        if judge is not gen:
            await judge.aclose()
