"""The backend contract: `await backend.chat(messages, n, params) -> Completion`, and its error classes.

Backends raise `TransientError` for what a retry can fix (429, 5xx, timeouts, dropped connections) and
`PermanentError` for what it cannot (other 4xx); the runner owns retries, backoff and concurrency.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class SamplingParams:
    """Endpoint-independent sampling parameters; they are part of the unit key."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 4096
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: bool = False

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Choice:
    content: str | None
    reasoning: str | None
    finish_reason: str | None
    completion_tokens: int = 0
    logprobs: list[dict] | None = None
    tokens_estimated: bool = False  # completion_tokens is a share of the request's total, not this sample's count
    cached: bool = False  # served from the response cache (llm/cache.py), not sampled (or paid for) now


@dataclass
class Completion:
    choices: list[Choice]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    extra: dict = field(default_factory=dict)


class TransientError(Exception):
    """A retry can fix it. `retry_after` is the server's hint in seconds; `rate_limited` marks a 429."""

    def __init__(self, message: str, retry_after: float | None = None, rate_limited: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.rate_limited = rate_limited


class PermanentError(Exception):
    """A retry cannot fix it (a 4xx other than 429): the unit fails with this message."""


class Backend(Protocol):
    name: str
    native_n: bool

    async def chat(self, messages: list[dict], n: int, params: SamplingParams) -> Completion: ...

    async def aclose(self) -> None: ...
