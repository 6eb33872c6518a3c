"""Micro-batching for in-process models: concurrent `submit` calls are gathered into one batch call.

The batch function runs in a worker thread, one batch at a time (models are not thread-safe), while the
event loop keeps accepting requests; whatever arrived meanwhile forms the next batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from distill_data.generation.backends.base import Completion, PermanentError, SamplingParams, TransientError


@dataclass
class GenRequest:
    messages: list[dict]
    n: int
    params: SamplingParams


class Batcher:
    """`await submit(request)` -> Completion; `fn(list[GenRequest]) -> list[Completion | Exception]`."""

    def __init__(self, fn: Callable[[list[GenRequest]], list], max_batch: int = 16, wait_seconds: float = 0.005):
        self.fn = fn
        self.max_batch = max_batch
        self.wait_seconds = wait_seconds
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None

    async def submit(self, request: GenRequest) -> Completion:
        if self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._loop())
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((request, future))
        return await future

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
            try:
                results = await asyncio.to_thread(self.fn, [r for r, _ in batch])
            except Exception as exc:  # noqa: BLE001 - the failure belongs to every request of the batch
                results = [exc] * len(batch)
            for (_, future), result in zip(batch, results, strict=True):
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
