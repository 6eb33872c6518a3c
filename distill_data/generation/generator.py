"""The generation layer shared by distill_data/ and prefs/: endpoints, adaptive concurrency, retries.

`Generator.complete(messages, n, params)` sends one request to the least-loaded endpoint and retries by the
fault policy: a 429 pauses that endpoint for Retry-After and halves its concurrency limit (additive
increase brings it back); 5xx, timeouts and dropped connections back off exponentially with jitter, up to
`max_attempts`; other 4xx fail at once. The result is an `Outcome`, never an exception.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

from distill_data.generation.backends.base import (
    Backend,
    Completion,
    PermanentError,
    SamplingParams,
    TransientError,
)


@dataclass
class RetryPolicy:
    max_attempts: int = 8
    base_delay: float = 1.0
    max_delay: float = 60.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Exponential backoff with equal jitter: half fixed, half random, capped."""
        d = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return d / 2 + rng.uniform(0, d / 2)


class Endpoint:
    """One backend with an AIMD concurrency limit and a Retry-After pause."""

    def __init__(self, backend: Backend, max_concurrency: int):
        self.backend = backend
        self.max = max_concurrency
        self.limit = float(max_concurrency)
        self.inflight = 0
        self.paused_until = 0.0
        self._last_cut = -1e9

    def free(self, now: float) -> bool:
        return now >= self.paused_until and self.inflight < max(1, int(self.limit))

    def on_success(self) -> None:
        if self.limit < self.max:
            self.limit = min(float(self.max), self.limit + 1.0 / self.limit)

    def on_rate_limit(self, retry_after: float | None, fallback: float) -> None:
        now = time.monotonic()
        wait = retry_after if retry_after is not None else fallback
        if now - self._last_cut > max(wait, 0.05):  # one cut per burst of 429s, not one per request
            self.limit = max(1.0, self.limit / 2)
            self._last_cut = now
        self.paused_until = max(self.paused_until, now + wait)


@dataclass
class Outcome:
    completion: Completion | None
    error: str | None
    attempts: int
    endpoint: str | None


@dataclass
class Stats:
    requests: int = 0  # sent, retries included
    responses: int = 0  # answered, successfully or not
    retries: int = 0
    rate_limited: int = 0
    prefill_tokens: int = 0
    sampled_tokens: int = 0
    errors: dict[str, int] = field(default_factory=dict)


class Generator:
    """Spread requests over endpoints; see the module docstring for the fault policy."""

    def __init__(self, endpoints: list[Endpoint], params: SamplingParams, policy: RetryPolicy | None = None,
                 seed: int = 0):
        self.endpoints = endpoints
        self.params = params
        self.policy = policy or RetryPolicy()
        self.stats = Stats()
        self._rng = random.Random(seed)
        self._changed = asyncio.Condition()

    @property
    def inflight(self) -> int:
        return sum(e.inflight for e in self.endpoints)

    @property
    def capacity(self) -> int:
        return sum(e.max for e in self.endpoints)

    @property
    def native_n(self) -> bool:
        return all(e.backend.native_n for e in self.endpoints)

    async def _acquire(self) -> Endpoint:
        async with self._changed:
            while True:
                now = time.monotonic()
                free = [e for e in self.endpoints if e.free(now)]
                if free:
                    best = min(free, key=lambda e: e.inflight / e.limit)
                    best.inflight += 1
                    return best
                paused = [e.paused_until for e in self.endpoints if e.paused_until > now]
                timeout = (min(paused) - now) if paused else None
                try:
                    await asyncio.wait_for(self._changed.wait(), timeout)
                except TimeoutError:
                    pass

    async def _release(self, endpoint: Endpoint) -> None:
        async with self._changed:
            endpoint.inflight -= 1
            self._changed.notify()

    def _count(self, error: str) -> None:
        kind = error.split(":")[0][:40]
        self.stats.errors[kind] = self.stats.errors.get(kind, 0) + 1

    async def _request(self, call) -> tuple[object | None, str | None, int, str | None]:
        """(result of `await call(backend)`, error, attempts, endpoint name) under the fault policy: any
        endpoint, retries with backoff for transient errors, a 429 pausing its endpoint."""
        attempt = 0
        while True:
            attempt += 1
            endpoint = await self._acquire()
            self.stats.requests += 1
            try:
                result = await call(endpoint.backend)
            except TransientError as exc:
                self.stats.responses += 1
                await self._release(endpoint)
                self._count(str(exc))
                delay = self.policy.delay(attempt, self._rng)
                if exc.rate_limited:
                    self.stats.rate_limited += 1
                    endpoint.on_rate_limit(exc.retry_after, delay)
                if attempt >= self.policy.max_attempts:
                    return None, f"{exc} (gave up after {attempt} attempts)", attempt, endpoint.backend.name
                self.stats.retries += 1
                # A 429 pauses the endpoint itself; other faults wait here, then try any endpoint.
                await asyncio.sleep(0 if exc.rate_limited else delay)
                continue
            except PermanentError as exc:
                self.stats.responses += 1
                await self._release(endpoint)
                self._count(str(exc))
                return None, str(exc), attempt, endpoint.backend.name
            self.stats.responses += 1
            await self._release(endpoint)
            endpoint.on_success()
            return result, None, attempt, endpoint.backend.name

    async def complete(self, messages: list[dict], n: int = 1, params: SamplingParams | None = None) -> Outcome:
        params = params or self.params
        attempts = 0
        while True:
            completion, error, tries, name = await self._request(lambda b: b.chat(messages, n, params))
            attempts += tries
            if completion is None:
                return Outcome(None, error, attempts, name)
            self.stats.prefill_tokens += completion.prompt_tokens
            self.stats.sampled_tokens += completion.completion_tokens
            if completion.choices:
                return Outcome(completion, None, attempts, name)
            self._count("empty choices")
            if attempts >= self.policy.max_attempts:
                return Outcome(None, "the server returned no choices", attempts, name)

    async def prompt_logprobs(self, token_ids: list[int]) -> tuple[list[float | None] | None, str | None]:
        """(per-token log-probs of a token-id prompt, error) from a backend that scores prompts (HTTP
        `/completions` with echo); prefill tokens are counted in `stats`."""
        result, error, _, _ = await self._request(lambda b: b.prompt_logprobs(token_ids))
        if result is None:
            return None, error
        logps, prompt_tokens = result
        self.stats.prefill_tokens += prompt_tokens
        return logps, None

    async def aclose(self) -> None:
        for e in self.endpoints:
            await e.backend.aclose()
