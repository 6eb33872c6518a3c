"""The generator every stage that samples from a model shares: endpoints, adaptive concurrency, retries.

`Generator.complete(messages, n, params)` sends one request to the least-loaded healthy endpoint and retries
by the fault policy: a 429 makes that request wait Retry-After (a burst of them also pauses the endpoint
and cuts its limit, see `endpoint.py`); 5xx, timeouts and dropped connections back off exponentially with
jitter, up to `max_attempts`, and enough of them in a row drain the endpoint until a probe succeeds; other
4xx fail at once. When every endpoint has been failing for longer than one request's retries would ride out
(`RetryPolicy.patience`, about 2 minutes by default), the generator gives up: every request still waiting,
and every later one, fails at once with that reason, so a dead endpoint ends a run in bounded time instead
of probing it once a minute per unit. Requests- and tokens-per-minute budgets (`budget.py`) gate every
attempt. The result is an `Outcome`, never an exception. With a response cache (`llm/cache.py`) the samples
it holds are served from it and only the rest is requested; with a cost cap (`CostCap`) no request starts
once the run's spend reaches it.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from llm.backends.base import (
    Completion,
    PermanentError,
    SamplingParams,
    TransientError,
)
from llm.budget import CostCap, RateBudget
from llm.cache import CacheView
from llm.endpoint import Endpoint

__all__ = ["Endpoint", "Generator", "Outcome", "RateBudget", "RetryPolicy", "Stats"]


@dataclass
class RetryPolicy:
    """Attempts per request and the backoff between them (commands build it with `llm.options.retry_policy`)."""

    max_attempts: int
    base_delay: float  # seconds before the second attempt; doubles per attempt
    max_delay: float

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Exponential backoff with equal jitter: half fixed, half random, capped."""
        d = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return d / 2 + rng.uniform(0, d / 2)

    def patience(self) -> float:
        """Seconds of outage one request's retries ride out: the longest backoffs of all its attempts."""
        return sum(min(self.max_delay, self.base_delay * 2 ** (a - 1)) for a in range(1, self.max_attempts))


@dataclass
class Outcome:
    """A request's result: its choices (cached ones marked `cached`) or an error, never an exception.
    `indices` is the sample index of each choice; `cached_prompt_tokens` the prompt tokens the cache answered
    (the completion's own token counts are the fresh request's alone)."""

    completion: Completion | None
    error: str | None
    attempts: int
    endpoint: str | None
    indices: list[int] = field(default_factory=list)
    cached_prompt_tokens: int = 0
    stopped: bool = False  # refused at the cost cap: nothing was sent


@dataclass
class Stats:
    requests: int = 0  # sent, retries included
    responses: int = 0  # answered, successfully or not
    retries: int = 0
    rate_limited: int = 0
    prefill_tokens: int = 0
    sampled_tokens: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    cached_requests: int = 0  # requests (or parts of one) the response cache answered: not sent, not paid
    cached_prefill_tokens: int = 0
    cached_sampled_tokens: int = 0


class Generator:
    """Spread requests over endpoints; see the module docstring for the fault policy."""

    def __init__(self, endpoints: list[Endpoint], params: SamplingParams, policy: RetryPolicy,
                 seed: int = 0, budget: RateBudget | None = None, cache: CacheView | None = None,
                 cap: CostCap | None = None):
        self.endpoints = endpoints
        self.params = params
        self.policy = policy
        self.budget = budget or RateBudget()
        self.cache = cache  # answers requests seen before (llm/cache.py); None: every request is sent
        self.cap = cap  # the run's cost cap; once reached no request starts
        self.stats = Stats()
        self._rng = random.Random(seed)
        self._changed = asyncio.Condition()
        self._sampled = [0, 0]  # completion tokens, samples: the running mean for token estimates
        self.gave_up: str | None = None  # why every request now fails at once (all endpoints stayed down)

    @property
    def inflight(self) -> int:
        return sum(e.inflight for e in self.endpoints)

    @property
    def capacity(self) -> int:
        return sum(e.max for e in self.endpoints)

    @property
    def native_n(self) -> bool:
        return all(e.backend.native_n for e in self.endpoints)

    async def _acquire(self) -> Endpoint | None:
        """The endpoint the next attempt goes to; None once the generator has given up (`gave_up`)."""
        async with self._changed:
            while True:
                now = time.monotonic()
                if self._outage_over_patience(now):
                    self._changed.notify_all()  # every waiter gives up too
                    return None
                free = [e for e in self.endpoints if e.free(now)]
                if free:
                    best = min(free, key=lambda e: e.inflight / e.limit)
                    best.inflight += 1
                    return best
                wakes = [t for t in (e.wakes_at(now) for e in self.endpoints) if t is not None]
                give_up_at = self._give_up_at()
                if give_up_at is not None:
                    wakes.append(give_up_at)
                try:
                    # asyncio.timeout, not wait_for: wait_for (3.11) can swallow a cancellation that races a
                    # notify, and the task then runs on after SIGTERM
                    async with asyncio.timeout(max(0.0, min(wakes) - now) if wakes else None):
                        await self._changed.wait()
                except TimeoutError:
                    pass

    def _give_up_at(self) -> float | None:
        """When the current outage of every endpoint exceeds the retry policy's patience (None: one answers)."""
        if any(e.down_since is None or e.healthy for e in self.endpoints):
            return None
        return max(e.down_since for e in self.endpoints) + self.policy.patience()  # type: ignore[type-var]

    def _outage_over_patience(self, now: float) -> bool:
        if self.gave_up is None:
            at = self._give_up_at()
            if at is None or now < at:
                return False
            errors = "; ".join(f"{e.backend.name}: {e.last_error}" for e in self.endpoints)
            patience = self.policy.patience()
            self.gave_up = (f"every endpoint has been failing for {now - (at - patience):.1f} s, longer than the "
                            f"{patience:.1f} s that --max-attempts {self.policy.max_attempts} with its backoff rides "
                            f"out ({errors})")
        return True

    async def _release(self, endpoint: Endpoint) -> None:
        async with self._changed:
            endpoint.inflight -= 1
            # wake as many waiters as there are free slots: a limit that just doubled opens several
            now = time.monotonic()
            slots = sum(max(0, int(e.limit) - e.inflight) for e in self.endpoints if e.free(now))
            self._changed.notify(max(1, slots))

    def _count(self, error: str) -> None:
        kind = error.split(":")[0][:40]
        self.stats.errors[kind] = self.stats.errors.get(kind, 0) + 1

    def estimate_tokens(self, messages: list[dict], n: int, params: SamplingParams) -> int:
        """Tokens a chat request will use, for the tokens-per-minute budget: prompt characters / 4 plus
        the mean completion seen so far per sample (`max_tokens` before the first reply)."""
        chars = sum(len(str(m.get("content") or "")) for m in messages)
        tokens, samples = self._sampled
        per_sample = tokens / samples if samples else params.max_tokens
        return chars // 4 + 1 + int(n * min(per_sample, params.max_tokens))

    async def _request(self, call, tokens: int = 0) -> tuple[object | None, str | None, int, str | None]:
        """(result of `await call(backend)`, error, attempts, endpoint name) under the fault policy: any
        endpoint, retries with backoff for transient errors, a 429 waiting Retry-After; every attempt takes
        one request and `tokens` (estimated) from the budget."""
        attempt = 0
        while True:
            attempt += 1
            reserved = await self.budget.take(tokens)
            endpoint = await self._acquire()
            if endpoint is None:
                self.budget.settle(reserved, 0)
                return None, self.gave_up, attempt - 1, None
            self.stats.requests += 1
            try:
                result = await call(endpoint.backend)
            except TransientError as exc:
                self.stats.responses += 1
                self.budget.settle(reserved, 0)
                await self._release(endpoint)
                self._count(str(exc))
                delay = self.policy.delay(attempt, self._rng)
                if exc.rate_limited:
                    self.stats.rate_limited += 1
                    delay = endpoint.on_rate_limit(exc.retry_after, delay)
                else:
                    endpoint.on_failure(str(exc))
                if attempt >= self.policy.max_attempts:
                    return None, f"{exc} (gave up after {attempt} attempts)", attempt, endpoint.backend.name
                self.stats.retries += 1
                await asyncio.sleep(delay)
                continue
            except PermanentError as exc:
                self.stats.responses += 1
                self.budget.settle(reserved, 0)
                await self._release(endpoint)
                self._count(str(exc))
                return None, str(exc), attempt, endpoint.backend.name
            self.stats.responses += 1
            endpoint.on_success()
            await self._release(endpoint)
            return result, None, attempt, endpoint.backend.name

    async def complete(self, messages: list[dict], n: int = 1, params: SamplingParams | None = None,
                       indices: list[int] | None = None) -> Outcome:
        """Samples `indices` (default 0..n-1) of one chat request: those in the cache from there, the rest in
        one request (a server may return fewer choices than asked; the caller asks again for the rest)."""
        params = params or self.params
        indices = list(range(n)) if indices is None else list(indices)
        key, hits = None, {}
        if self.cache is not None:
            key = self.cache.key(messages, params)
            hits = self.cache.get(key, indices)
        missing = [i for i in indices if i not in hits]
        cached = [hits[i].choice for i in indices if i in hits]
        cached_prompt = max((hits[i].prompt_tokens for i in hits), default=0)
        if hits:
            self.stats.cached_requests += 1
            self.stats.cached_prefill_tokens += cached_prompt
            self.stats.cached_sampled_tokens += sum(c.completion_tokens for c in cached)
        done = [i for i in indices if i in hits]
        if not missing:
            return Outcome(Completion(cached), None, 0, None, done, cached_prompt)
        if self.cap is not None and self.cap.reached:
            partial = Completion(cached) if cached else None
            return Outcome(partial, self.cap.refuse(), 0, None, done, cached_prompt, stopped=True)
        outcome = await self._fresh(messages, len(missing), params)
        outcome.cached_prompt_tokens = cached_prompt
        fresh = outcome.completion
        if fresh is None:
            if cached:
                outcome.completion = Completion(cached)
            outcome.indices = done
            return outcome
        got = list(zip(missing, fresh.choices, strict=False))
        if key is not None and self.cache is not None and got:
            self.cache.put(key, got, fresh.prompt_tokens, outcome.endpoint or "")
        fresh.choices = [*cached, *(c for _, c in got)]
        outcome.indices = [*done, *(i for i, _ in got)]
        return outcome

    async def _fresh(self, messages: list[dict], n: int, params: SamplingParams) -> Outcome:
        """One chat request for `n` samples, sent under the fault policy (and charged to the cost cap)."""
        attempts = 0
        while True:
            tokens = self.estimate_tokens(messages, n, params) if self.budget.tpm else 0
            completion, error, tries, name = await self._request(lambda b: b.chat(messages, n, params), tokens)
            attempts += tries
            if completion is None:
                return Outcome(None, error, attempts, name)
            self.budget.settle(tokens, completion.prompt_tokens + completion.completion_tokens)
            self.stats.prefill_tokens += completion.prompt_tokens
            self.stats.sampled_tokens += completion.completion_tokens
            if self.cap is not None:
                self.cap.charge(completion.prompt_tokens, completion.completion_tokens)
            self._sampled[0] += completion.completion_tokens
            self._sampled[1] += len(completion.choices)
            if completion.choices:
                return Outcome(completion, None, attempts, name)
            self._count("empty choices")
            if attempts >= self.policy.max_attempts:
                return Outcome(None, "the server returned no choices", attempts, name)

    async def prompt_logprobs(self, token_ids: list[int]) -> tuple[list[float | None] | None, str | None]:
        """(per-token log-probs of a token-id prompt, error) from a backend that scores prompts (HTTP
        `/completions` with echo); prefill tokens are counted in `stats`."""
        tokens = len(token_ids) + 1 if self.budget.tpm else 0
        if self.cap is not None and self.cap.reached:
            return None, self.cap.refuse()
        result, error, _, _ = await self._request(lambda b: b.prompt_logprobs(token_ids), tokens)
        if result is None:
            return None, error
        logps, prompt_tokens = result
        self.budget.settle(tokens, prompt_tokens + 1)
        self.stats.prefill_tokens += prompt_tokens
        if self.cap is not None:
            self.cap.charge(prompt_tokens, 0)
        return logps, None

    def attach(self, ledger, on_change=None) -> None:
        """Let backends that keep state in the run's ledger (openai-batch: its submitted batches, so a re-run
        polls them) attach to it; `on_change()` is called when that state changes (progress)."""
        for e in self.endpoints:
            attach = getattr(e.backend, "attach_ledger", None)
            if attach is not None:
                attach(ledger, on_change)

    @property
    def usage_category(self) -> str:
        """The ledger's usage category of this generator's tokens: "batch" through a batch API, else "fresh"."""
        kinds = {getattr(e.backend, "usage_category", "fresh") for e in self.endpoints}
        return kinds.pop() if len(kinds) == 1 else "fresh"

    async def aclose(self) -> None:
        for e in self.endpoints:
            await e.backend.aclose()
