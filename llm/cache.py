"""The response cache shared by every run of a workspace: a sample answered once is never paid for again.

One sqlite file, `$WB_CACHE_DIR/responses.sqlite` (default `$WB_HOME/cache/`, the workspace `wb info`
prints), holds one row per (request, sample index, origin). The request key is content-addressed: a hash of
the model's identity (its name and backend kind; a local model directory adds its chat template and a
fingerprint of its files, so retrained weights at the same path miss), the sampling parameters (seed
included) and the messages. A sample index is part of the row, so samples at temperature > 0 without a
seed are kept apart: `--n 4` then `--n 8` finds samples 0-3 here and asks only for 4-7. `origin` is the
endpoint that answered (its base URL; `local` in-process): a lookup takes rows from the run's own
endpoints only, so the same model name on another server is not mistaken for this one, while adding a
replica keeps the rows of the old one.

Safe under concurrent runs: WAL mode, a busy timeout, and `INSERT OR IGNORE` (two runs answering the
same sample keep the first; either is a valid sample). Prune by last use: `wb cache prune --older-than 7d`.
`--no-cache` on distill, prefs and eval neither reads nor writes it. Failed requests are never cached.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from llm.backends.base import Choice, SamplingParams
from workbench.errors import InputError
from workbench.workspace import workspace_dir

CACHE_ENV = "WB_CACHE_DIR"
CACHE_FILE = "responses.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
  key TEXT NOT NULL, sample_index INTEGER NOT NULL, origin TEXT NOT NULL,
  content TEXT, reasoning TEXT, finish_reason TEXT, prompt_tokens INTEGER, completion_tokens INTEGER,
  tokens_estimated INTEGER, logprobs TEXT, created_at REAL, used_at REAL,
  PRIMARY KEY (key, sample_index, origin));
CREATE INDEX IF NOT EXISTS samples_used ON samples (used_at);
"""
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def cache_dir() -> Path:
    """Where the response cache lives: `$WB_CACHE_DIR`, else `$WB_HOME/cache` (`workbench.workspace`)."""
    return Path(os.environ.get(CACHE_ENV) or workspace_dir() / "cache")


@dataclass
class Cached:
    """One cached sample: its choice (marked `cached`) and the prompt tokens of the request that made it."""

    choice: Choice
    prompt_tokens: int


class ResponseCache:
    """The cache file; `get` and `put` speak sample rows under a request key (see `CacheView` for requests)."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else cache_dir() / CACHE_FILE
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=60.0)
            self.conn.execute("PRAGMA auto_vacuum=INCREMENTAL")  # only takes effect on a new file: prune shrinks it
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(_SCHEMA)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise InputError(f"{self.path}: cannot open the response cache ({exc}); delete the file, set "
                             f"${CACHE_ENV} to another directory, or pass --no-cache") from None

    def get(self, key: str, indices: list[int], origins: tuple[str, ...]) -> dict[int, Cached]:
        """The cached samples of request `key` among `indices`, answered by one of `origins`; their last use
        is set to now (pruning goes by it)."""
        marks = ",".join("?" * len(indices))
        where = f"key=? AND sample_index IN ({marks}) AND origin IN ({','.join('?' * len(origins))})"
        rows = self.conn.execute(
            "SELECT sample_index, content, reasoning, finish_reason, prompt_tokens, completion_tokens, "
            f"tokens_estimated, logprobs FROM samples WHERE {where}", (key, *indices, *origins)).fetchall()
        found: dict[int, Cached] = {}
        for i, content, reasoning, finish, prompt_tokens, tokens, estimated, logprobs in rows:
            choice = Choice(content, reasoning, finish, tokens or 0, json.loads(logprobs) if logprobs else None,
                            bool(estimated), cached=True)
            found.setdefault(i, Cached(choice, prompt_tokens or 0))
        if found:
            self.conn.execute(f"UPDATE samples SET used_at=? WHERE {where}", (time.time(), key, *indices, *origins))
        return found

    def put(self, key: str, samples: list[tuple[int, Choice]], prompt_tokens: int, origin: str) -> None:
        """Keep the fresh `samples` (index, choice) of request `key`, answered by `origin`."""
        now = time.time()
        rows = [(key, i, origin, c.content, c.reasoning, c.finish_reason, prompt_tokens, c.completion_tokens,
                 int(c.tokens_estimated), json.dumps(c.logprobs) if c.logprobs is not None else None, now, now)
                for i, c in samples]
        with self.conn:  # one transaction per request: a reader never sees half of its samples
            self.conn.executemany("INSERT OR IGNORE INTO samples VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)

    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0])

    def prune(self, older_than: float) -> tuple[int, int]:
        """Delete the samples not used for `older_than` seconds; return (deleted, kept)."""
        cutoff = time.time() - older_than
        with self.conn:
            deleted = self.conn.execute("DELETE FROM samples WHERE used_at < ?", (cutoff,)).rowcount
        self.conn.execute("PRAGMA incremental_vacuum")
        return deleted, self.count()

    def close(self) -> None:
        self.conn.close()


def parse_age(text: str, flag: str = "--older-than") -> float:
    """Seconds in an age such as `7d`, `12h`, `30m`, `90s` or `2w`; raise `InputError` naming `flag`."""
    match = _AGE.match(text or "")
    if not match:
        raise InputError(f"{flag} {text!r}: expected a number and a unit, s m h d or w (e.g. 7d, 12h)")
    return float(match.group(1)) * _SECONDS[match.group(2)]


def model_identity(model: str, backend: str, template_id: str) -> str:
    """What names a model in cache keys: its name and backend kind; for a local directory also its chat
    template and a fingerprint of its files (name, size, modification time), so new weights at the same path
    are a new model."""
    if backend in ("openai", "openai-batch"):  # a served model: its name (the origins say which servers)
        return json.dumps({"model": model, "backend": "http"})
    files = []
    if os.path.isdir(model):
        for entry in sorted(os.scandir(model), key=lambda e: e.name):
            if entry.is_file():
                st = entry.stat()
                files.append([entry.name, st.st_size, st.st_mtime_ns])
    return json.dumps({"model": os.path.abspath(model) if files else model, "backend": "local",
                       "template": template_id, "files": files})


class CacheView:
    """The cache as one generator sees it: its model's identity and the endpoints whose answers it takes."""

    def __init__(self, cache: ResponseCache, identity: str, origins: tuple[str, ...]):
        self.cache = cache
        self.identity = identity
        self.origins = origins

    def key(self, messages: list[dict], params: SamplingParams) -> str:
        """The content address of a request: model identity, sampling parameters and messages."""
        body = json.dumps({"model": self.identity, "params": asdict(params), "messages": messages},
                          sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(body.encode()).hexdigest()

    def get(self, key: str, indices: list[int]) -> dict[int, Cached]:
        return self.cache.get(key, indices, self.origins)

    def put(self, key: str, samples: list[tuple[int, Choice]], prompt_tokens: int, origin: str) -> None:
        self.cache.put(key, samples, prompt_tokens, origin if origin in self.origins else self.origins[0])


def open_cache(enabled: bool = True) -> ResponseCache | None:
    """The workspace's response cache, or None with `--no-cache`."""
    return ResponseCache() if enabled else None
