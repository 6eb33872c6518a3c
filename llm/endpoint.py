"""One endpoint's state: an AIMD concurrency limit that recovers, a Retry-After pause, and health.

The limit is cut in half (never below a floor) only when 429s make up at least half of the endpoint's
recent answers: a provider at capacity rejects most excess requests, while scattered 429s (a noisy
gateway, a shared key) do not mean the endpoint is overloaded, and each of those requests already waits
its own Retry-After. Successes add 1/limit; after `quiet_seconds` without a cut the limit doubles
(a probe upward), so a collapse recovers in a few seconds instead of thousands of requests.
Consecutive failures (5xx, timeouts, dropped connections) mark the endpoint down: it is drained, then one
probe request is let through after 2 s (doubling up to a minute) and a success brings it back.
`down_since` is when the current run of failures began (None while the endpoint answers): the generator
gives up once every endpoint has been failing for longer than its retries would ride out.
"""

from __future__ import annotations

from collections import deque
from time import monotonic

from llm.backends.base import Backend

WINDOW = 32  # recent answers the 429 share is measured over
MIN_ANSWERS = 8  # the share counts at least this many answers (one early 429 is not a burst)
CUT_SHARE = 0.5  # a cut needs 429s on at least this share of them
FAILURES_DOWN = 6  # consecutive failures that mark an endpoint down
PROBE_FIRST, PROBE_MAX = 2.0, 60.0  # seconds before probing a down endpoint (doubling)


class Endpoint:
    """One backend with its concurrency limit, Retry-After pause and health (see the module docstring)."""

    def __init__(self, backend: Backend, max_concurrency: int, min_concurrency: int | None = None,
                 quiet_seconds: float = 2.0):
        self.backend = backend
        self.max = max_concurrency
        self.floor = float(min(max_concurrency, min_concurrency or max(1, max_concurrency // 8)))
        self.limit = float(max_concurrency)
        self.quiet_seconds = quiet_seconds
        self.inflight = 0
        self.paused_until = 0.0
        self.healthy = True
        self.down_until = 0.0
        self.failures = 0  # consecutive
        self.down_since: float | None = None  # monotonic time of the first of those failures
        self.last_error: str | None = None
        self.cuts = 0
        self._down_for = 0.0
        self._recent: deque[bool] = deque(maxlen=WINDOW)  # True: a 429
        self._last_cut = self._last_raise = -1e9

    def free(self, now: float) -> bool:
        """Whether a request may start here now (a down endpoint takes one probe at a time)."""
        if now < self.paused_until:
            return False
        if not self.healthy:
            return now >= self.down_until and self.inflight == 0
        return self.inflight < max(1, int(self.limit))

    def wakes_at(self, now: float) -> float | None:
        """When a pause or a down period that blocks this endpoint ends, if one does after `now`."""
        until = max(self.paused_until, self.down_until if not self.healthy else 0.0)
        return until if until > now else None

    def on_success(self) -> None:
        now = monotonic()
        self._recent.append(False)
        self.failures, self.down_since = 0, None
        if not self.healthy:  # a probe came back: restart from the floor and probe upward
            self.healthy, self._down_for = True, 0.0
            self.limit, self._last_cut = self.floor, now
            return
        if self.limit >= self.max:
            return
        if now - self._last_cut >= self.quiet_seconds and now - self._last_raise >= self.quiet_seconds:
            self.limit = min(float(self.max), self.limit * 2)
            self._last_raise = now
        else:
            self.limit = min(float(self.max), self.limit + 1.0 / self.limit)

    def on_rate_limit(self, retry_after: float | None, fallback: float) -> float:
        """Record a 429; return the seconds the request that got it waits (Retry-After, else `fallback`).
        A burst (429s on half the recent answers) halves the limit once per wait and pauses the endpoint."""
        now = monotonic()
        wait = retry_after if retry_after is not None else fallback
        self._recent.append(True)
        self.failures, self.down_since = 0, None  # it answered: alive
        share = sum(self._recent) / max(len(self._recent), MIN_ANSWERS)
        if share >= CUT_SHARE and now - self._last_cut > max(wait, 0.05):
            self.limit = max(self.floor, self.limit / 2)
            self._last_cut = now
            self.cuts += 1
            self.paused_until = max(self.paused_until, now + wait)
        return wait

    def on_failure(self, error: str | None = None) -> None:
        """Record a 5xx, timeout or dropped connection; enough in a row (or a failed probe) drain it."""
        now = monotonic()
        self.failures += 1
        self.last_error = error or self.last_error
        if self.down_since is None:
            self.down_since = now
        if not self.healthy and now < self.down_until:
            return  # requests sent before it went down are still coming back
        if not self.healthy or self.failures >= FAILURES_DOWN:
            self._down_for = min(PROBE_MAX, max(PROBE_FIRST, self._down_for * 2))
            self.healthy = False
            self.down_until = now + self._down_for

    def state(self) -> dict:
        """A summary for progress and manifests."""
        return {"endpoint": self.backend.name, "limit": round(self.limit, 1), "inflight": self.inflight,
                "healthy": self.healthy, "cuts": self.cuts}
