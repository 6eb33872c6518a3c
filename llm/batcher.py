"""Batching for in-process models: concurrent `submit` calls share the model.

`ContinuousBatcher` (for engines with `prepare` / `admit` / `step`, as LocalEngine) runs a decode loop in
one worker thread: between two decode steps, queued samples join the running batch (at most `max_batch`
samples run, so a request with a large `n` is split; the queued requests take free places in turn, and the
last free place is kept for a request with nothing running, so a short request behind a wide one starts
at once) and finished ones leave, so a long sample holds no one. Tokenizing happens in that thread too, off the event loop. `Batcher` (for engines with only
`generate_batch`, e.g. vLLM's offline engine) gathers what arrived within `wait_seconds` into one call.
A request whose caller went away (its `submit` was cancelled) is flagged through `GenRequest.cancel`: it
is skipped if still queued, and the engine stops generating for it at the next token. `max_pending` bounds
the samples queued or running (`QueueFull`, with a retry hint); `close()` cancels everything.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
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
        """Queue `request` and wait for its completion; the bookkeeping every batcher shares (pending count,
        live set, cancellation) lives here, how a request reaches the engine in `_enqueue`."""
        self.admit(request.n)
        future = asyncio.get_running_loop().create_future()
        self.pending += request.n
        self._live.add(request)
        try:
            await self._enqueue(request, future)
            return await future
        except asyncio.CancelledError:
            request.cancel.set()  # the caller left: stop generating for it
            raise
        finally:
            self.pending -= request.n
            self._live.discard(request)

    async def _enqueue(self, request: GenRequest, future: asyncio.Future) -> None:
        if self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._loop())
        await self._queue.put((request, future))

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


class ContinuousBatcher(Batcher):
    """`await submit(request)` -> Completion over an engine with `prepare(request) -> job` (a job counts its
    `admitted` and `done` samples), `admit([(job, i)])`, `step() -> [finished jobs]`, `completion(job)`,
    `running`, `accepts_new()` and `reset()`."""

    IDLE_POLL_SECONDS = 0.5  # how often an idle worker looks at its stop flag
    # An idle engine waits for the rest of a burst (until 2 ms pass without an arrival, 10 ms at most), so
    # its requests share one prefill; a running batch never waits (new requests join at the next step).
    BURST_SECONDS = 0.01
    BURST_QUIET_SECONDS = 0.002

    def __init__(self, engine, max_batch: int = 16, max_pending: int | None = None):
        super().__init__(engine.generate_batch, max_batch, 0.0, max_pending)
        self.engine = engine
        self._cond = threading.Condition()
        self._incoming: list[tuple[GenRequest, asyncio.Future, asyncio.AbstractEventLoop]] = []
        self._worker: threading.Thread | None = None
        self._stop = False

    async def _enqueue(self, request: GenRequest, future: asyncio.Future) -> None:
        with self._cond:
            if self._worker is None or not self._worker.is_alive():
                self._stop = False
                self._worker = threading.Thread(target=self._run, name="wb-decode", daemon=True)
                self._worker.start()
            self._incoming.append((request, future, future.get_loop()))
            self._cond.notify()

    def _run(self) -> None:
        """The decode loop: take new requests, admit samples into free places, step, answer finished jobs."""
        queued: deque = deque()  # [job, next sample index, future, loop, started at]
        open_: dict[int, list] = {}  # id(job) -> its entry, for jobs with samples running
        while True:
            with self._cond:
                while not (self._stop or self._incoming or queued or self.engine.running):
                    self._cond.wait(self.IDLE_POLL_SECONDS)
                if self._stop:
                    break
                if self._incoming and not queued and not self.engine.running:
                    deadline = time.monotonic() + self.BURST_SECONDS
                    while time.monotonic() < deadline and not self._stop:  # until 2 ms pass with no arrival
                        seen = len(self._incoming)
                        self._cond.wait(self.BURST_QUIET_SECONDS)
                        if len(self._incoming) == seen:
                            break
                incoming, self._incoming = self._incoming, []
            for request, future, loop in incoming:
                if request.cancel.is_set():
                    _answer(loop, future, Closing("cancelled before it ran"))
                    continue
                try:
                    job = self.engine.prepare(request)
                except ValueError as exc:
                    _answer(loop, future, exc)
                    continue
                queued.append([job, 0, future, loop, time.monotonic()])
            for entry in [e for e in queued if e[0].request.cancel.is_set()]:
                queued.remove(entry)
                open_.pop(id(entry[0]), None)
                _answer(entry[3], entry[2], Closing("cancelled"))
                self._release(entry[0])
            try:
                picks = self._pick(queued, open_)
                if not picks and not self.engine.running:  # only jobs that must wait (weights loading)
                    with self._cond:
                        self._cond.wait(0.01)
                    continue
                self.engine.admit(picks)
                finished = self.engine.step()
            except Exception as exc:  # noqa: BLE001 - e.g. out of memory: the running jobs fail, the loop goes on
                self.engine.reset()
                for entry in list(open_.values()):
                    if entry in queued:
                        queued.remove(entry)
                    _answer(entry[3], entry[2], exc)
                    self._release(entry[0])
                open_.clear()
                continue
            for job in finished:
                entry = open_.pop(id(job), None)
                if entry is None:
                    continue  # answered already (cancelled)
                self.batch_seconds = 0.7 * self.batch_seconds + 0.3 * (time.monotonic() - entry[4])
                result = Closing("cancelled") if job.request.cancel.is_set() else self.engine.completion(job)
                _answer(entry[3], entry[2], result)

    def _pick(self, queued: deque, open_: dict) -> list:
        """Samples for the free places, one per queued job in turn (a job that got one goes to the back);
        jobs not yet started wait while the engine takes no new ones."""
        free = self.max_batch - self.engine.running
        fresh = self.engine.accepts_new()
        picks: list = []
        skipped: list = []
        while free > 0 and queued:
            entry = queued.popleft()
            job = entry[0]
            waits = entry[1] == 0 and not fresh and id(job) not in open_
            # the last free place is kept for a request with nothing running, so a request that arrives
            # behind a wide one starts at once instead of after the wide one's first samples end
            keeps_last = free == 1 and self.max_batch > 1 and entry[1] > job.done  # entry[1]: admitted so far
            if waits or keeps_last:
                skipped.append(entry)
                continue
            picks.append((job, entry[1]))
            open_[id(job)] = entry
            entry[1] += 1
            free -= 1
            if entry[1] < job.request.n:
                queued.append(entry)
        queued.extendleft(reversed(skipped))  # they keep their place
        return picks

    def _release(self, job) -> None:
        release = getattr(self.engine, "release", None)
        if release is not None:
            release(job)

    async def aclose(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._worker is not None:
            await asyncio.to_thread(self._worker.join, 10)


def batcher_for(engine, max_batch: int = 16, max_pending: int | None = None) -> Batcher:
    """A ContinuousBatcher for an engine that steps (LocalEngine), else a Batcher over its `generate_batch`."""
    if all(hasattr(engine, name) for name in ("prepare", "admit", "step")):
        return ContinuousBatcher(engine, max_batch, max_pending)
    return Batcher(engine.generate_batch, max_batch, max_pending=max_pending)


def _answer(loop: asyncio.AbstractEventLoop, future: asyncio.Future, result: object) -> None:
    """Resolve `future` (on its loop) with a result or an exception, unless it is done already."""

    def settle() -> None:
        if future.done():
            return
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the loop has closed: nobody is waiting
        pass


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
