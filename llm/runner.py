"""Drive every pending unit through the `Generator`, record outcomes in the `Ledger`, show live progress.

Pending units are grouped per prompt so a backend with native `n` gets one request for all of a prompt's
missing samples; a server that returns fewer choices than asked is asked again for the rest. Samples the
response cache holds are recorded as `cached` (their tokens apart, at no cost); once the run's cost cap is
reached the samples not yet sent stay pending for a re-run.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from llm.generator import Generator
from llm.ledger import Ledger, UnitResult
from llm.options import token_cost
from llm.reasoning import split_reasoning
from workbench.errors import RunFailed
from workbench.rundir import RunDir


@dataclass
class Progress:
    total: int
    done_before: int = 0
    done: int = 0
    failed: int = 0
    truncated: int = 0
    price_in: float | None = None
    price_out: float | None = None
    # called as units finish, e.g. to keep the run's progress.json current (it throttles its own writes)
    watch: Callable[[Progress, Generator], None] | None = None

    def publish(self, gen: Generator) -> None:
        if self.watch is not None:
            self.watch(self, gen)

    def cost(self, prefill: int, sampled: int) -> float | None:
        return token_cost(prefill, sampled, self.price_in, self.price_out)

    def line(self, gen: Generator, elapsed: float) -> str:
        s = gen.stats
        rate = s.responses / elapsed if elapsed > 0 else 0.0
        tok = s.sampled_tokens / elapsed if elapsed > 0 else 0.0
        parts = [f"done {self.done_before + self.done:,}/{self.total:,}", f"in flight {gen.inflight}",
                 f"failed {self.failed:,}", f"truncated {self.truncated:,}", f"{rate:.1f} req/s", f"{tok:,.0f} tok/s",
                 f"tokens {s.prefill_tokens:,} in / {s.sampled_tokens:,} out"]
        cost = self.cost(s.prefill_tokens, s.sampled_tokens)
        if cost is not None:
            parts.append(f"${cost:,.4f}")
        if s.cached_requests:
            parts.append(f"cached {s.cached_requests:,} req / {s.cached_sampled_tokens:,} tok (free)")
        if s.rate_limited:
            parts.append(f"429s {s.rate_limited}")
        if s.retries:
            parts.append(f"retries {s.retries}")
        return " | ".join(parts)


def pending_jobs(prompts: pa.Table, n: int, done: dict[tuple[str, int], str]) -> list[tuple[int, list[int]]]:
    """(row in `prompts`, sample indexes still to do) for every prompt with work left."""
    jobs = []
    ids = prompts.column("prompt_id").to_pylist()
    hashes = prompts.column("prompt_hash").to_pylist()
    for row, (pid, h) in enumerate(zip(ids, hashes, strict=True)):
        todo = [i for i in range(n) if done.get((pid, i)) != h]
        if todo:
            jobs.append((row, todo))
    return jobs


async def run_units(prompts: pa.Table, n: int, ledger: Ledger, gen: Generator, progress: Progress,
                    progress_seconds: float = 2.0, out=None) -> None:
    """Generate every pending unit; returns when each has an ok/truncated/failed row in the ledger."""
    out = out or sys.stderr
    gen.attach(ledger, lambda: progress.publish(gen))
    done = ledger.done()
    jobs = pending_jobs(prompts, n, done)
    progress.done_before = sum(1 for k, h in done.items() if k[1] < n)
    queue: asyncio.Queue = asyncio.Queue()
    per_request = n if gen.native_n else 1
    for row, todo in jobs:
        for start in range(0, len(todo), per_request):
            queue.put_nowait((row, todo[start:start + per_request]))
    messages = prompts.column("prompt").to_pylist()
    ids = prompts.column("prompt_id").to_pylist()
    hashes = prompts.column("prompt_hash").to_pylist()

    async def work() -> None:
        while True:
            try:
                row, samples = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            while samples:
                outcome = await gen.complete(messages[row], len(samples), indices=samples)
                comp = outcome.completion
                if comp is not None:
                    fresh = [c for c in comp.choices if not c.cached]
                    cached = [c for c in comp.choices if c.cached]
                    if fresh:  # sent now: online (fresh) or through a provider's batch API (batch)
                        ledger.add_usage(1, comp.prompt_tokens, comp.completion_tokens, gen.usage_category)
                    if cached:
                        ledger.add_usage(1, outcome.cached_prompt_tokens, sum(c.completion_tokens for c in cached),
                                         "cached")
                    for i, choice in zip(outcome.indices, comp.choices, strict=True):
                        reasoning, content = split_reasoning(choice.content, choice.reasoning)
                        status = "truncated" if choice.finish_reason == "length" else "ok"
                        progress.done += 1
                        progress.truncated += status == "truncated"
                        prompt_tokens = outcome.cached_prompt_tokens if choice.cached else comp.prompt_tokens
                        ledger.record(UnitResult(ids[row], i, hashes[row], status, reasoning, content,
                                                 choice.finish_reason, None, prompt_tokens, choice.completion_tokens,
                                                 outcome.attempts, "cache" if choice.cached else outcome.endpoint,
                                                 choice.tokens_estimated,
                                                 "cached" if choice.cached else gen.usage_category))
                    got = set(outcome.indices)
                    samples = [i for i in samples if i not in got]
                if outcome.error is not None:
                    # a refusal at the cost cap (cached samples are still served) leaves the rest pending, not failed:
                    # a re-run under a higher cap sends them
                    if not outcome.stopped:
                        for i in samples:
                            progress.failed += 1
                            ledger.record(UnitResult(ids[row], i, hashes[row], "failed", None, None, None,
                                                     outcome.error, 0, 0, outcome.attempts, outcome.endpoint))
                    samples = []
                ledger.maybe_flush()
                progress.publish(gen)

    async def report() -> None:
        tty = out.isatty() if hasattr(out, "isatty") else False
        while True:
            await asyncio.sleep(progress_seconds)
            line = progress.line(gen, time.monotonic() - start)
            print(("\r" + line) if tty else line, end="" if tty else "\n", file=out, flush=True)

    start = time.monotonic()
    reporter = asyncio.create_task(report()) if progress_seconds > 0 else None
    workers = [asyncio.create_task(work()) for _ in range(min(max(1, gen.capacity), max(1, queue.qsize())))]
    tasks = [*workers, *([reporter] if reporter else [])]
    try:
        await asyncio.gather(*workers)
    finally:
        for t in tasks:
            t.cancel()
        # wait for the cancelled tasks to unwind here (SIGTERM, Ctrl-C, a failed worker), so none is left
        # pending when the loop closes ("Task was destroyed but it is pending!")
        await asyncio.gather(*tasks, return_exceptions=True)
        ledger.flush()
    if progress_seconds > 0:
        print(("\n" if out.isatty() else "") + progress.line(gen, time.monotonic() - start), file=out, flush=True)


def watch_units(run: RunDir, parts: list[tuple[Progress, Generator, tuple[int, int, int]]],
                cached: tuple[int, int, int] = (0, 0, 0)):
    """Give every part a `Progress.watch` that keeps the run's progress.json current over all parts, each a
    (progress, generator, paid usage committed before this process): one for distill, one per prefs model.
    `cached` is the cached usage committed before this process, over all parts (`Ledger.usage_by_billing`)."""

    def watch(_progress: Progress, _gen: Generator) -> None:
        used = [(b[0] + g.stats.requests, b[1] + g.stats.prefill_tokens, b[2] + g.stats.sampled_tokens)
                for _, g, b in parts]
        prefill, sampled = sum(u[1] for u in used), sum(u[2] for u in used)
        progress = [p for p, _, _ in parts]
        stats = [g.stats for _, g, _ in parts]
        batches: dict[str, int] = {}  # openai-batch: batches by status (validating = submitted, in_progress, ...)
        for _, g, _ in parts:
            for e in g.endpoints:
                for status, count in getattr(e.backend, "batch_counts", dict)().items():
                    batches[status] = batches.get(status, 0) + count
        run.progress.update(done=sum(p.done_before + p.done + p.failed for p in progress),
                            total=sum(p.total for p in progress), unit="units", phase="generation",
                            usage={"requests": sum(u[0] for u in used), "prefill_tokens": prefill,
                                   "sampled_tokens": sampled, "cost_usd": progress[0].cost(prefill, sampled),
                                   "cached_requests": cached[0] + sum(s.cached_requests for s in stats),
                                   "cached_prefill_tokens": cached[1] + sum(s.cached_prefill_tokens for s in stats),
                                   "cached_sampled_tokens": cached[2] + sum(s.cached_sampled_tokens for s in stats)},
                            failed=sum(p.failed for p in progress), truncated=sum(p.truncated for p in progress),
                            in_flight=sum(g.inflight for _, g, _ in parts), **({"batches": batches} if batches else {}))

    for p, _, _ in parts:
        p.watch = watch


def check_some_succeeded(units: pa.Table, what: str = "unit") -> None:
    """Raise `RunFailed` when `units` (a unit table: `status`, `error`) has rows and every one failed: such a run
    is failed, not complete (a wrong model name, a dead endpoint); the message carries the first error."""
    if units.num_rows == 0:
        return
    failed = pc.equal(units.column("status"), "failed")
    if not pc.all(failed).as_py():
        return
    errors = [e for e in units.filter(failed).column("error").to_pylist() if e]
    raise RunFailed(f"every {what} failed ({units.num_rows:,} of {units.num_rows:,}; first error: "
                    f"{errors[0] if errors else 'unknown'}); the run keeps them as failed: fix the cause and re-run "
                    "the same command to retry")
