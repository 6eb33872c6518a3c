"""The `difficulty` score of `wb select`: an LLM judge rates each distinct question 1-10 (OpenThoughts3's
question filter for code), through the `llm` generation layer (endpoints, retries, 429 back-off) with
`wb select`'s endpoint options; `curate.select.rater_spec` builds the judge's endpoint.

Ratings go into the run directory's ledger (`scores` table) one chunk at a time with the tokens used, so a
killed or partly failed run is resumed by re-running the same command: only unrated questions are asked.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from workbench.rundir import Usage

if TYPE_CHECKING:
    from llm import EndpointSpec, RetryPolicy


class RatingOptions(Protocol):
    """What rating reads of `curate.select.SelectConfig` besides the judge's endpoint."""

    judge_max_tokens: int
    chunk: int


DIFFICULTY_RUBRIC = """Rate how difficult the following question is to answer correctly, from 1 (trivial: one \
step, common knowledge) to 10 (extremely hard: long multi-step reasoning or expert knowledge, where strong \
models often fail). Judge the question only; do not solve it in full.

Question:
{question}

Give a one-sentence justification, then a last line that is exactly `DIFFICULTY: N` with N an integer \
from 1 to 10."""
_DIFFICULTY = re.compile(r"DIFFICULTY:\s*(\d+(?:\.\d+)?)", re.IGNORECASE)


def question_id(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def parse_difficulty(text: str | None) -> float | None:
    found = _DIFFICULTY.findall(text or "")
    value = float(found[-1]) if found else None
    return value if value is not None and 1 <= value <= 10 else None


def rate_difficulty(questions: list[str], spec: EndpointSpec, retry: RetryPolicy, config: RatingOptions,
                    run: Path, usage: Usage, notes: dict,
                    progress: object | None = None) -> dict[str, tuple[float | None, str | None]]:
    """question id -> (1-10 rating or None, detail), asking the judge at `spec` only for questions the ledger
    lacks; the tokens of every rating so far are added to `usage`."""
    from llm import LEDGER, Ledger, SamplingParams, open_generator, run_key

    params = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=config.judge_max_tokens)
    unique = {question_id(q): q for q in questions}
    generator, template = open_generator(spec, params, retry)
    ledger = Ledger(run / LEDGER, run_key(spec, params, template))
    scorer = f"difficulty:{spec.model}"
    failed: dict[str, str] = {}
    try:
        done = ledger.scores(scorer)
        todo = [k for k in unique if (k, 0) not in done]

        async def rate(key: str) -> tuple[str, float | None, str | None, tuple[int, int] | None]:
            messages = [{"role": "user", "content": DIFFICULTY_RUBRIC.format(question=unique[key])}]
            outcome = await generator.complete(messages, 1, params)
            if outcome.completion is None:
                return key, None, f"judge failed: {outcome.error}", None
            text = outcome.completion.choices[0].content or ""
            value = parse_difficulty(text)
            detail = text[-500:] if value is not None else f"judge gave no difficulty: {text[-200:]}"
            return key, value, detail, (outcome.completion.prompt_tokens, outcome.completion.completion_tokens)

        async def rate_all() -> None:
            try:
                for start in range(0, len(todo), config.chunk):
                    results = await asyncio.gather(*(rate(k) for k in todo[start:start + config.chunk]))
                    for _, _, _, tokens in results:
                        if tokens is not None:
                            ledger.add_usage(1, *tokens)
                    failed.update({k: d for k, v, d, t in results if t is None})
                    ledger.record_scores(scorer, [(k, 0, v, d) for k, v, d, t in results if t is not None])
                    ledger.flush()
                    if progress is not None:
                        requests, prefill, sampled = ledger.usage()
                        progress.update(done=len(unique) - len(todo) + start + len(results), total=len(unique),
                                        phase="judge", unit="questions",
                                        usage={"requests": requests, "prefill_tokens": prefill,
                                               "sampled_tokens": sampled})
            finally:
                await generator.aclose()

        asyncio.run(rate_all())
        requests, prefill, sampled = ledger.usage()
        usage.add(Usage(requests=requests, prefill_tokens=prefill, sampled_tokens=sampled))
        rated = {k: v for (k, _), v in ledger.scores(scorer).items()}
    finally:
        ledger.close()
    notes.update({"questions": len(unique), "rated_now": len(todo) - len(failed), "unrated": len(failed)})
    return {k: rated.get(k, (None, failed.get(k, "not rated"))) for k in unique}
