"""Per-token metering: requests, prefill, sampled and trained tokens per session and per model.

Prefill tokens are prompt tokens a sampler read and tokens of forward-only passes; sampled tokens are
tokens generated; trained tokens are the input tokens of forward_backward passes. Prices (USD per
million tokens of each kind, from a YAML file) turn counts into cost; a per-session token budget refuses
further work once spent. The totals are written to `usage.json` in the server's run directory as they
change, in the `workbench.rundir.Usage` shape, so the run's manifest and `wb runs --usage` can read them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from trainers.tinker_service.protocol import RequestError
from workbench.errors import InputError
from workbench.rundir import Usage
from workbench.runfiles import read_json, write_atomic

USAGE_FILE = "usage.json"
PRICE_KEYS = ("prefill", "sample", "train")


@dataclass
class Prices:
    """USD per million tokens of each kind."""

    prefill: float = 0.0
    sample: float = 0.0
    train: float = 0.0

    def cost(self, u: Usage) -> float:
        return (u.prefill_tokens * self.prefill + u.sampled_tokens * self.sample + u.trained_tokens * self.train) / 1e6


def load_prices(path: str | None) -> Prices | None:
    """Read `prefill: X, sample: Y, train: Z` (USD per million tokens) from a YAML file."""
    if not path:
        return None
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise InputError(f"{path}: cannot read the prices file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict) or not raw:
        raise InputError(f"{path}: expected a mapping with {', '.join(PRICE_KEYS)} (USD per million tokens)")
    unknown = sorted(set(raw) - set(PRICE_KEYS))
    if unknown:
        raise InputError(f"{path}: unknown key {unknown[0]!r}; expected {', '.join(PRICE_KEYS)} (USD per million tokens)")
    values = {}
    for k, v in raw.items():
        if isinstance(v, bool) or not isinstance(v, int | float) or not (0 <= v < float("inf")):
            raise InputError(f"{path}: {k} must be a non-negative number of USD per million tokens, got {v!r}")
        values[k] = float(v)
    return Prices(**values)


def _usage(d: dict | None = None) -> Usage:
    return Usage(**{k: v for k, v in (d or {}).items() if k in Usage.__dataclass_fields__})


@dataclass
class SessionUsage:
    total: Usage = field(default_factory=Usage)
    models: dict[str, Usage] = field(default_factory=dict)
    tenant: str | None = None  # whose session: a tenant's usage report lists only its own


class Meter:
    """Thread-safe counters; `record` adds one request's tokens to its session and model."""

    def __init__(self, path: Path | None = None, prices: Prices | None = None, token_budget: int | None = None,
                 flush_seconds: float = 1.0, progress=None):
        self.path = path
        self.progress = progress  # the run's ProgressFile: `wb runs` shows a live server's usage from it
        self.prices = prices
        self.token_budget = token_budget
        self.flush_seconds = flush_seconds
        self.sessions: dict[str, SessionUsage] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._flushed = 0.0
        self._dirty = False
        saved = read_json(path) if path is not None else None
        if saved is not None:  # a restarted server keeps counting where it stopped
            for sid, s in saved.get("sessions", {}).items():
                self.sessions[sid] = SessionUsage(_usage(s.get("usage")),
                                                  {m: _usage(u) for m, u in s.get("models", {}).items()},
                                                  s.get("tenant"))

    def check_budget(self, session_id: str | None) -> None:
        """Raise RequestError when the session has spent its token budget."""
        if self.token_budget is None or session_id is None:
            return
        with self._lock:
            s = self.sessions.get(session_id)
            used = _tokens(s.total) if s else 0
        if used >= self.token_budget:
            raise RequestError(f"session {session_id} has spent its token budget ({used} of {self.token_budget} "
                               "tokens); start a new session or raise --token-budget")

    def open_session(self, session_id: str, tenant: str) -> None:
        """Register a new session as `tenant`'s, so its usage is reported to that tenant only."""
        with self._lock:
            self.sessions.setdefault(session_id, SessionUsage()).tenant = tenant

    def record(self, session_id: str | None, model: str, prefill: int = 0, sampled: int = 0, trained: int = 0) -> None:
        one = Usage(requests=1, prefill_tokens=prefill, sampled_tokens=sampled, trained_tokens=trained)
        with self._lock:
            s = self.sessions.setdefault(session_id or "-", SessionUsage())
            s.total.add(one)
            s.models.setdefault(model, Usage()).add(one)
        self._dirty = True
        if self.path is not None and time.monotonic() - self._flushed >= self.flush_seconds:
            self.flush()

    def flush_if_changed(self) -> None:
        """Write the usage file if counts changed since the last write (the worker calls this when idle)."""
        if self._dirty:
            self.flush()

    def totals(self, tenant: str | None = None) -> Usage:
        """Usage summed over every session, or over `tenant`'s."""
        total = Usage()
        with self._lock:
            for s in self.sessions.values():
                if tenant is None or s.tenant == tenant:
                    total.add(s.total)
        return self._priced(total)

    def _priced(self, u: Usage) -> Usage:
        u = Usage(**asdict(u))
        u.cost_usd = round(self.prices.cost(u), 6) if self.prices else None
        return u

    def report(self, tenant: str | None = None) -> dict:
        """`{"usage": totals, "sessions": {id: {"usage", "models": {id: usage}, "tenant"}}, "prices"}`
        (JSON-ready), over every session or only `tenant`'s."""
        with self._lock:
            sessions = {sid: {"usage": asdict(self._priced(s.total)),
                              "models": {m: asdict(self._priced(u)) for m, u in s.models.items()},
                              "tenant": s.tenant}
                        for sid, s in self.sessions.items() if tenant is None or s.tenant == tenant}
        return {"usage": asdict(self.totals(tenant)), "sessions": sessions,
                "prices": asdict(self.prices) if self.prices else None, "token_budget": self.token_budget}

    def flush(self) -> None:
        if self.path is None:
            return
        with self._flush_lock:  # one writer at a time: the temporary file name is per process
            self._flushed = time.monotonic()
            self._dirty = False
            report = self.report()
            write_atomic(self.path, report)
            if self.progress is not None:
                self.progress.update(usage=report["usage"], phase="serving", force=True)


def _tokens(u: Usage) -> int:
    return u.prefill_tokens + u.sampled_tokens + u.trained_tokens
