"""Requests-per-minute and tokens-per-minute budgets: the limits providers publish, as token buckets.

Each bucket holds one minute of budget, starts full and refills continuously. A request takes one
request and its estimated tokens (prompt characters / 4 plus the mean completion seen so far, or
`max_tokens` before any) before it is sent; when the reply reports its real usage the difference is
settled, so a bad estimate costs one request's worth of slack and never drifts. The budget is shared by
all endpoints of a generator (a provider limits the key, not the URL); with `--shard` on several hosts
give each host its share.
"""

from __future__ import annotations

import asyncio
import time


class RateBudget:
    """`await take(tokens)` before a request, `settle(reserved, used)` after it."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None):
        self.rpm, self.tpm = rpm, tpm
        self._requests = float(rpm or 0.0)
        self._tokens = float(tpm or 0.0)
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()
        self.waited = 0.0  # seconds requests spent waiting for budget, summed

    @property
    def active(self) -> bool:
        return bool(self.rpm or self.tpm)

    def _refill(self) -> None:
        now = time.monotonic()
        dt, self._stamp = now - self._stamp, now
        if self.rpm:
            self._requests = min(self.rpm, self._requests + dt * self.rpm / 60)
        if self.tpm:
            self._tokens = min(self.tpm, self._tokens + dt * self.tpm / 60)

    async def take(self, tokens: int) -> int:
        """Wait until one request and `tokens` (capped at a minute's budget) fit; return the tokens taken."""
        if not self.active:
            return 0
        tokens = min(tokens, int(self.tpm)) if self.tpm else 0
        async with self._lock:  # one waiter at a time: first come, first served
            while True:
                self._refill()
                short_r = (1 - self._requests) * 60 / self.rpm if self.rpm and self._requests < 1 else 0.0
                short_t = (tokens - self._tokens) * 60 / self.tpm if self.tpm and self._tokens < tokens else 0.0
                wait = max(short_r, short_t)
                if wait <= 0:
                    self._requests -= 1 if self.rpm else 0
                    self._tokens -= tokens
                    return tokens
                wait = min(wait, 1.0)  # look again soon: settled replies may return reserved tokens
                self.waited += wait
                await asyncio.sleep(wait)

    def settle(self, reserved: int, used: int) -> None:
        """Correct the token bucket once a reply reports the tokens it really used."""
        if self.tpm:
            self._tokens = min(float(self.tpm), self._tokens + reserved - used)
