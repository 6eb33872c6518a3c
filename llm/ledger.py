"""The durable ledger: one sqlite row per finished unit, committed in small batches (WAL mode).

A unit is (prompt_id, sample_index) under a run key (model, sampling parameters, template). Only finished
units are written, so after a SIGKILL at any moment the units that were in flight (or in the last
uncommitted batch when `flush_seconds` > 0) are simply pending again; a re-run sends exactly those.
A request's units are committed together. In WAL mode with synchronous=NORMAL a commit is a write to the
WAL file, which survives a process kill (only a power loss can drop the last commits).
The primary key makes duplicate rows impossible. Failed units are retried by a re-run; ok and truncated
ones are kept. Verdicts (and prefs/' numeric scores) live in their own tables so scoring also resumes.
Usage is kept per request and per unit with its billing (`BILLING`): every sample is counted once, as fresh,
cached or batch, and only fresh and batch tokens cost anything.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from dataclasses import astuple, dataclass
from pathlib import Path

from workbench.rundir import Usage

LEDGER = "ledger.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS units (
  key TEXT NOT NULL, prompt_id TEXT NOT NULL, sample_index INTEGER NOT NULL, prompt_hash TEXT NOT NULL,
  status TEXT NOT NULL, reasoning TEXT, content TEXT, finish_reason TEXT, error TEXT,
  prompt_tokens INTEGER, completion_tokens INTEGER, attempts INTEGER, endpoint TEXT, finished_at REAL,
  tokens_estimated INTEGER, PRIMARY KEY (key, prompt_id, sample_index));
CREATE TABLE IF NOT EXISTS verdicts (
  key TEXT NOT NULL, verifier TEXT NOT NULL, prompt_id TEXT NOT NULL, sample_index INTEGER NOT NULL,
  verified INTEGER, detail TEXT, PRIMARY KEY (key, verifier, prompt_id, sample_index));
CREATE TABLE IF NOT EXISTS scores (
  key TEXT NOT NULL, scorer TEXT NOT NULL, prompt_id TEXT NOT NULL, sample_index INTEGER NOT NULL,
  score REAL, detail TEXT, PRIMARY KEY (key, scorer, prompt_id, sample_index));
CREATE TABLE IF NOT EXISTS usage (key TEXT NOT NULL, requests INTEGER, prefill_tokens INTEGER, sampled_tokens INTEGER,
  billing TEXT);
"""
# How a request's tokens were billed: sent now (fresh), answered by the response cache (cached: not sent, not
# paid), or sent through a provider's batch API (batch: paid at its own prices).
BILLING = ("fresh", "cached", "batch")
PAID = ("fresh", "batch")



@contextmanager
def transaction(conn: sqlite3.Connection):
    """BEGIN ... COMMIT on `conn` (opened with isolation_level=None), rolled back on any exception, Ctrl-C
    included: a ledger's writes land whole or not at all."""
    conn.execute("BEGIN")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")

@dataclass
class UnitResult:
    """The outcome of one unit, as stored."""

    prompt_id: str
    sample_index: int
    prompt_hash: str
    status: str  # ok | truncated | failed
    reasoning: str | None
    content: str | None
    finish_reason: str | None
    error: str | None
    prompt_tokens: int
    completion_tokens: int
    attempts: int
    endpoint: str | None
    tokens_estimated: bool = False  # completion_tokens is a share of the request's total (the server gave no more)
    billing: str = "fresh"  # one of BILLING


class Ledger:
    """Unit states of one run directory; `record` buffers, `flush` commits (also every `flush_seconds`)."""

    def __init__(self, path: str | Path, key: str, flush_seconds: float = 0.0):
        self.path = Path(path)
        self.key = key
        self.flush_seconds = flush_seconds
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a process kill
        self.conn.executescript(_SCHEMA)
        columns = {row[1] for row in self.conn.execute("PRAGMA table_info(units)")}
        if "tokens_estimated" not in columns:  # a ledger written before counts could be estimates
            self.conn.execute("ALTER TABLE units ADD COLUMN tokens_estimated INTEGER")
        if "billing" not in columns:  # a ledger written before the response cache: every unit was fresh
            self.conn.execute("ALTER TABLE units ADD COLUMN billing TEXT")
        if "billing" not in {row[1] for row in self.conn.execute("PRAGMA table_info(usage)")}:
            self.conn.execute("ALTER TABLE usage ADD COLUMN billing TEXT")
        self._buffer: list[tuple] = []
        self._usage: dict[str, list[int]] = {}  # billing -> requests, prefill, sampled since the last flush
        self._last_flush = time.monotonic()

    def done(self) -> dict[tuple[str, int], str]:
        """(prompt_id, sample_index) -> prompt_hash of units that need no more work (ok or truncated)."""
        rows = self.conn.execute(
            "SELECT prompt_id, sample_index, prompt_hash FROM units WHERE key=? AND status IN ('ok','truncated')",
            (self.key,)).fetchall()
        return {(p, i): h for p, i, h in rows}

    def record(self, result: UnitResult) -> None:
        """Buffer a unit; it is durable after the next `flush` (call `maybe_flush` after each request)."""
        *fields, estimated, billing = astuple(result)
        self._buffer.append((self.key, *fields, time.time(), int(estimated), billing))

    def maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def add_usage(self, requests: int, prefill_tokens: int, sampled_tokens: int, billing: str = "fresh") -> None:
        """Usage of successful requests (billed as `billing`, one of `BILLING`), committed with the units they
        produced."""
        if billing not in BILLING:
            raise ValueError(f"billing {billing!r}: expected one of {', '.join(BILLING)}")
        counts = self._usage.setdefault(billing, [0, 0, 0])
        counts[0] += requests
        counts[1] += prefill_tokens
        counts[2] += sampled_tokens

    def flush(self) -> None:
        usage = [(self.key, *c, b) for b, c in self._usage.items() if c[0]]
        if self._buffer or usage:
            with self._transaction():
                self.conn.executemany("INSERT OR REPLACE INTO units (key, prompt_id, sample_index, prompt_hash, status, "
                                      "reasoning, content, finish_reason, error, prompt_tokens, completion_tokens, "
                                      "attempts, endpoint, finished_at, tokens_estimated, billing) "
                                      "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                      self._buffer)
                self.conn.executemany("INSERT INTO usage (key, requests, prefill_tokens, sampled_tokens, billing) "
                                      "VALUES (?,?,?,?,?)", usage)
            self._buffer.clear()
            self._usage = {}
        self._last_flush = time.monotonic()

    def usage(self) -> tuple[int, int, int]:
        """(requests, prefill tokens, sampled tokens) of every committed successful request of this key that was
        paid for (fresh or batch; `usage_by_billing` has the cached ones too)."""
        paid = [self.usage_by_billing()[b] for b in PAID]
        return sum(u[0] for u in paid), sum(u[1] for u in paid), sum(u[2] for u in paid)

    def usage_by_billing(self) -> dict[str, tuple[int, int, int]]:
        """Billing (each of `BILLING`) -> (requests, prefill tokens, sampled tokens) committed under this key."""
        rows = self.conn.execute("SELECT COALESCE(billing, 'fresh'), SUM(requests), SUM(prefill_tokens), "
                                 "SUM(sampled_tokens) FROM usage WHERE key=? GROUP BY 1", (self.key,)).fetchall()
        found = {b: (int(r or 0), int(p or 0), int(s or 0)) for b, r, p, s in rows}
        return {b: found.get(b, (0, 0, 0)) for b in BILLING}

    def results(self):
        """All units of this key as an Arrow table."""
        import pyarrow as pa

        cur = self.conn.execute(
            "SELECT prompt_id, sample_index, prompt_hash, status, reasoning, content, finish_reason, error, "
            "prompt_tokens, completion_tokens, attempts, endpoint, tokens_estimated, COALESCE(billing, 'fresh') AS billing "
            "FROM units WHERE key=?", (self.key,))
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
        types = {"sample_index": pa.int64(), "prompt_tokens": pa.int64(), "completion_tokens": pa.int64(),
                 "attempts": pa.int64(), "tokens_estimated": pa.bool_()}
        columns = {n: [r[j] for r in rows] for j, n in enumerate(names)}
        columns["tokens_estimated"] = [None if v is None else bool(v) for v in columns["tokens_estimated"]]
        return pa.table({n: pa.array(v, types.get(n, pa.string())) for n, v in columns.items()})

    def verdicts(self, verifier: str) -> dict[tuple[str, int], tuple[bool | None, str | None]]:
        rows = self.conn.execute(
            "SELECT prompt_id, sample_index, verified, detail FROM verdicts WHERE key=? AND verifier=?",
            (self.key, verifier)).fetchall()
        return {(p, i): (None if v is None else bool(v), d) for p, i, v, d in rows}

    def record_verdicts(self, verifier: str, items: list[tuple[str, int, bool | None, str | None]]) -> None:
        with self._transaction():
            self.conn.executemany("INSERT OR REPLACE INTO verdicts VALUES (?,?,?,?,?,?)",
                                  [(self.key, verifier, p, i, None if v is None else int(v), d) for p, i, v, d in items])

    def scores(self, scorer: str) -> dict[tuple[str, int], tuple[float | None, str | None]]:
        """(prompt_id, sample_index) -> (score, detail) recorded by `scorer` (a judge rubric, a reward model)."""
        rows = self.conn.execute(
            "SELECT prompt_id, sample_index, score, detail FROM scores WHERE key=? AND scorer=?",
            (self.key, scorer)).fetchall()
        return {(p, i): (s, d) for p, i, s, d in rows}

    def record_scores(self, scorer: str, items: list[tuple[str, int, float | None, str | None]]) -> None:
        with self._transaction():
            self.conn.executemany("INSERT OR REPLACE INTO scores VALUES (?,?,?,?,?,?)",
                                  [(self.key, scorer, p, i, s, d) for p, i, s, d in items])

    def _transaction(self):
        return transaction(self.conn)

    def close(self) -> None:
        self.flush()
        self.conn.close()


def run_usage(ledgers: list[Ledger], price_in: float | None, price_out: float | None,
              batch_prices: tuple[float | None, float | None] | None = None) -> Usage:
    """A run's `Usage` over its `ledgers` (one per model of the run), each billing apart: fresh and batch
    tokens are the paid totals and the cost (batch tokens at `batch_prices`, (in, out) USD per million, when
    given, else at the online prices), cached ones are counted beside them at no cost."""
    from llm.budget import token_cost

    totals = {b: [0, 0, 0] for b in BILLING}
    for ledger in ledgers:
        for billing, counts in ledger.usage_by_billing().items():
            totals[billing] = [a + b for a, b in zip(totals[billing], counts, strict=True)]
    paid = [sum(totals[b][j] for b in PAID) for j in range(3)]
    (cached_r, cached_p, cached_s), (batch_r, batch_p, batch_s) = totals["cached"], totals["batch"]
    cost = token_cost(totals["fresh"][1], totals["fresh"][2], price_in, price_out)
    batch_cost = token_cost(batch_p, batch_s, *(batch_prices or (price_in, price_out)))
    if batch_cost is not None:
        cost = (cost or 0.0) + batch_cost
    return Usage(requests=paid[0], prefill_tokens=paid[1], sampled_tokens=paid[2], cost_usd=cost,
                 cached_requests=cached_r, cached_prefill_tokens=cached_p, cached_sampled_tokens=cached_s, batch_requests=batch_r,
                 batch_prefill_tokens=batch_p, batch_sampled_tokens=batch_s)
