"""Spending limits: requests- and tokens-per-minute budgets (the limits providers publish, as token buckets)
and the run's cost cap (`CostCap`, `--max-cost`), with the one pricing function `token_cost`.

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


def token_cost(prefill: int, sampled: int, price_in: float | None, price_out: float | None) -> float | None:
    """USD for `prefill` prompt and `sampled` completion tokens at `--price-in` / `--price-out` (USD per
    million tokens); None when neither price is given."""
    if price_in is None and price_out is None:
        return None
    return (prefill * (price_in or 0.0) + sampled * (price_out or 0.0)) / 1e6


class CostCap:
    """`--max-cost`: the USD a run may spend, counted from its ledger (earlier invocations included).

    Every fresh completion is charged at `--price-in` / `--price-out`; once the spend reaches the cap no new
    request starts (`reached`), the requests already in flight finish and are kept (so a run overshoots by at
    most those), and the job ends with `CostCapReached`. Cached samples cost nothing and are never refused.
    """

    def __init__(self, max_cost: float | None, price_in: float | None, price_out: float | None, spent: float = 0.0):
        self.max_cost = max_cost
        self.price_in, self.price_out = price_in, price_out
        self.spent = spent
        self.stopped = False  # some work was left undone because of the cap

    def charge(self, prefill: int, sampled: int) -> None:
        self.spent += token_cost(prefill, sampled, self.price_in, self.price_out) or 0.0

    @property
    def reached(self) -> bool:
        return self.max_cost is not None and self.spent >= self.max_cost

    def refuse(self) -> str:
        """Note that a request was refused; return the reason."""
        self.stopped = True
        return self.reason()

    def reason(self) -> str:
        return (f"stopped at the cost cap: ${self.spent:,.4f} spent of --max-cost {self.max_cost:g}; the work done "
                "is kept: raise --max-cost and re-run the same command to continue")

    def raise_if_stopped(self) -> None:
        """Raise `CostCapReached` when the cap left work undone."""
        if self.stopped:
            from workbench.errors import CostCapReached

            raise CostCapReached(self.reason())
