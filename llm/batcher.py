"""Micro-batching for in-process models: concurrent `submit` calls are gathered into one batch call.

The batch function runs in a worker thread, one batch at a time (models are not thread-safe), while the
event loop keeps accepting requests; whatever arrived meanwhile forms the next batch. A request whose
caller went away (its `submit` was cancelled) is flagged through `GenRequest.cancel`: it is skipped if
still queued, and the engine stops generating for it at the next token. `max_pending` bounds the samples
queued or running (`QueueFull`, with a retry hint); `close()` cancels everything for a fast shutdown.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from llm.backends.base import Completion, PermanentError, SamplingParams, TransientError


@dataclass(eq=False)
class GenRequest:
    messages: list[dict]
    n: int
    params: SamplingParams
    cancel: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)


class QueueFull(Exception):
    """More samples are queued than the server takes; retry after `retry_after` seconds."""

    def __init__(self, pending: int, retry_after: int):
        super().__init__(f"the server is busy ({pending} samples queued or running); retry in {retry_after} s")
        self.retry_after = retry_after


class Closing(Exception):
    """The batcher is shutting down."""


class Batcher:
    """`await submit(request)` -> Completion; `fn(list[GenRequest]) -> list[Completion | Exception]`."""

    def __init__(self, fn: Callable[[list[GenRequest]], list], max_batch: int = 16, wait_seconds: float = 0.005,
                 max_pending: int | None = None):
        self.fn = fn
        self.max_batch = max_batch
        self.wait_seconds = wait_seconds
        self.max_pending = max_pending
        self.pending = 0  # samples (sum of n) queued or running
        self.batch_seconds = 1.0  # a running mean of batch time, for the retry hint
        self.closing = False
        self._live: set[GenRequest] = set()
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained by one batch's worth."""
        return max(1, math.ceil(self.batch_seconds * max(1.0, self.pending / max(1, self.max_batch))))

    def admit(self, n: int) -> None:
        """Raise `Closing` or `QueueFull` if a request for `n` samples would be refused now."""
        if self.closing:
            raise Closing("the server is shutting down")
        if self.max_pending is not None and self.pending and self.pending + n > self.max_pending:
            raise QueueFull(self.pending, self.retry_after())

    async def submit(self, request: GenRequest) -> Completion:
        self.admit(request.n)
        if self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._loop())
        future = asyncio.get_running_loop().create_future()
        self.pending += request.n
        self._live.add(request)
        try:
            await self._queue.put((request, future))
            return await future
        except asyncio.CancelledError:
            request.cancel.set()  # the caller left: stop generating for it
            raise
        finally:
            self.pending -= request.n
            self._live.discard(request)

    def close(self) -> None:
        """Refuse new requests and stop the queued and running ones (their callers get `Closing`)."""
        self.closing = True
        for request in list(self._live):
            request.cancel.set()

    async def _loop(self) -> None:
        queue = self._queue
        while True:
            batch = [await queue.get()]
            await asyncio.sleep(self.wait_seconds)  # let concurrent requests join this batch
            size = batch[0][0].n
            while not queue.empty() and size < self.max_batch:
                item = queue.get_nowait()
                batch.append(item)
                size += item[0].n
            for request, future in batch:
                if request.cancel.is_set() and not future.done():
                    future.set_exception(Closing("cancelled before it ran"))
            batch = [(r, f) for r, f in batch if not f.done()]
            if not batch:
                continue
            started = time.monotonic()
            try:
                results = await asyncio.to_thread(self.fn, [r for r, _ in batch])
            except Exception as exc:  # noqa: BLE001 - the failure belongs to every request of the batch
                results = [exc] * len(batch)
            self.batch_seconds = 0.7 * self.batch_seconds + 0.3 * (time.monotonic() - started)
            for (request, future), result in zip(batch, results, strict=True):
                if request.cancel.is_set() and not future.done():
                    result = Closing("cancelled")
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()


class BatchedBackend:
    """A backend over an in-process model: `self.batcher` set by the subclass; native `n`."""

    native_n = True
    batcher: Batcher

    async def chat(self, messages: list[dict], n: int, params: SamplingParams) -> Completion:
        try:
            return await self.batcher.submit(GenRequest(messages, n, params))
        except ValueError as exc:  # a request the model cannot take (too long, bad template)
            raise PermanentError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - e.g. out of memory for this batch: bounded retries
            raise TransientError(f"{type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        await self.batcher.aclose()
