"""The durable ledger: one sqlite row per finished unit, committed in small batches (WAL mode).

A unit is (prompt_id, sample_index) under a run key (model, sampling parameters, template). Only finished
units are written, so after a SIGKILL at any moment the units that were in flight (or in the last
uncommitted batch when `flush_seconds` > 0) are simply pending again; a re-run sends exactly those.
A request's units are committed together. In WAL mode with synchronous=NORMAL a commit is a write to the
WAL file, which survives a process kill (only a power loss can drop the last commits).
The primary key makes duplicate rows impossible. Failed units are retried by a re-run; ok and truncated
ones are kept. Verdicts (and prefs/' numeric scores) live in their own tables so scoring also resumes.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from dataclasses import astuple, dataclass
from pathlib import Path

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
CREATE TABLE IF NOT EXISTS usage (key TEXT NOT NULL, requests INTEGER, prefill_tokens INTEGER, sampled_tokens INTEGER);
"""
USAGE_CATEGORIES = ("fresh", "batch")  # how a request's tokens were bought: online, or in a provider's batch


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
        if "category" not in {row[1] for row in self.conn.execute("PRAGMA table_info(usage)")}:
            self.conn.execute("ALTER TABLE usage ADD COLUMN category TEXT")  # NULL (older ledgers): fresh
        self._buffer: list[tuple] = []
        self._usage: dict[str, list[int]] = {}  # category -> requests, prefill, sampled since the last flush
        self._last_flush = time.monotonic()

    def done(self) -> dict[tuple[str, int], str]:
        """(prompt_id, sample_index) -> prompt_hash of units that need no more work (ok or truncated)."""
        rows = self.conn.execute(
            "SELECT prompt_id, sample_index, prompt_hash FROM units WHERE key=? AND status IN ('ok','truncated')",
            (self.key,)).fetchall()
        return {(p, i): h for p, i, h in rows}

    def record(self, result: UnitResult) -> None:
        """Buffer a unit; it is durable after the next `flush` (call `maybe_flush` after each request)."""
        *fields, estimated = astuple(result)
        self._buffer.append((self.key, *fields, time.time(), int(estimated)))

    def maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def add_usage(self, requests: int, prefill_tokens: int, sampled_tokens: int, category: str = "fresh") -> None:
        """Usage of successful requests, committed with the units they produced; `category` is one of
        `USAGE_CATEGORIES`."""
        used = self._usage.setdefault(category, [0, 0, 0])
        used[0] += requests
        used[1] += prefill_tokens
        used[2] += sampled_tokens

    def flush(self) -> None:
        if self._buffer or self._usage:
            with self._transaction():
                self.conn.executemany("INSERT OR REPLACE INTO units (key, prompt_id, sample_index, prompt_hash, status, "
                                      "reasoning, content, finish_reason, error, prompt_tokens, completion_tokens, "
                                      "attempts, endpoint, finished_at, tokens_estimated) "
                                      "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                      self._buffer)
                self.conn.executemany("INSERT INTO usage (key, requests, prefill_tokens, sampled_tokens, category) "
                                      "VALUES (?,?,?,?,?)", [(self.key, *u, c) for c, u in self._usage.items()])
            self._buffer.clear()
            self._usage = {}
        self._last_flush = time.monotonic()

    def usage(self) -> tuple[int, int, int]:
        """(requests, prefill tokens, sampled tokens) of every committed successful request of this key."""
        row = self.conn.execute("SELECT COALESCE(SUM(requests),0), COALESCE(SUM(prefill_tokens),0), "
                                "COALESCE(SUM(sampled_tokens),0) FROM usage WHERE key=?", (self.key,)).fetchall()[0]
        return int(row[0]), int(row[1]), int(row[2])

    def usage_by_category(self) -> dict[str, tuple[int, int, int]]:
        """`usage()` per category ("fresh", "batch"), only those with committed requests."""
        rows = self.conn.execute("SELECT COALESCE(category,'fresh'), SUM(requests), SUM(prefill_tokens), "
                                 "SUM(sampled_tokens) FROM usage WHERE key=? GROUP BY 1", (self.key,)).fetchall()
        return {c: (int(r), int(p), int(s)) for c, r, p, s in rows}

    def results(self):
        """All units of this key as an Arrow table."""
        import pyarrow as pa

        cur = self.conn.execute(
            "SELECT prompt_id, sample_index, prompt_hash, status, reasoning, content, finish_reason, error, "
            "prompt_tokens, completion_tokens, attempts, endpoint, tokens_estimated "
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

    @contextmanager
    def _transaction(self):
        self.conn.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.flush()
        self.conn.close()
