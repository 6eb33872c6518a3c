"""Futures and the single worker that runs them: requests are accepted at once and executed later.

The SDK sends a forward_backward's chunks out of order (2, 3, ..., then 1) and waits for the later ones
to be accepted before sending the first, so a handler that blocked until its turn would deadlock. Every
request therefore becomes a `Future` at once; a `Scheduler` thread runs the jobs of each lane (one lane
per training model, ordered by `seq_id`; one per sampling session, in arrival order), taking one runnable
job per lane in turn so several clients share the device fairly. `retrieve_future` long-polls a future.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from trainers.tinker_service.protocol import RequestError

log = logging.getLogger("wb.tinker")
RETAIN_SECONDS = 600.0  # a retrieved result stays this long, for an SDK retry of the same retrieve


@dataclass
class Future:
    request_id: str
    session_id: str | None
    tenant: str | None = None  # whose request: only that tenant (or the admin) may retrieve it
    done: bool = False
    payload: bytes | dict | None = None
    proto: bool = False
    error: str | None = None
    category: str = "server"
    retrieved_at: float | None = None
    event: asyncio.Event | None = None


class FutureTable:
    """Futures by request id; resolved from the worker thread, awaited on the server's event loop."""

    def __init__(self) -> None:
        self._futures: dict[str, Future] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None

    def create(self, session_id: str | None, tenant: str | None = None) -> Future:
        fut = Future(f"req-{next(self._ids)}", session_id, tenant, event=asyncio.Event())
        with self._lock:
            self._purge()
            self._futures[fut.request_id] = fut
        return fut

    def get(self, request_id: str) -> Future | None:
        with self._lock:
            return self._futures.get(request_id)

    def _finish(self, fut: Future) -> None:
        fut.done = True
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(fut.event.set)

    def resolve(self, fut: Future, payload: bytes | dict, proto: bool = False) -> None:
        fut.payload, fut.proto = payload, proto
        self._finish(fut)

    def fail(self, fut: Future, message: str, category: str = "user") -> None:
        fut.error, fut.category = message, category
        self._finish(fut)

    async def wait(self, fut: Future, timeout: float) -> bool:
        """True once `fut` is done; False if it is still pending after `timeout` seconds."""
        if not fut.done:
            try:
                await asyncio.wait_for(fut.event.wait(), timeout)
            except TimeoutError:
                return fut.done
        if fut.retrieved_at is None:
            fut.retrieved_at = time.monotonic()
        return True

    def _purge(self) -> None:
        now = time.monotonic()
        stale = [k for k, f in self._futures.items() if f.retrieved_at and now - f.retrieved_at > RETAIN_SECONDS]
        for k in stale:
            del self._futures[k]


@dataclass
class Job:
    lane: str
    seq: int | None
    run: Callable[[], tuple[bytes | dict, bool]]  # -> (payload, is_proto)
    future: Future


@dataclass
class _Lane:
    next_seq: int = 1
    ordered: dict[int, Job] = field(default_factory=dict)
    fifo: list[Job] = field(default_factory=list)
    blocked_since: float | None = None


class Scheduler:
    """One worker thread; per lane, jobs with a `seq` run in seq order, others in arrival order."""

    def __init__(self, futures: FutureTable, gap_timeout: float = 120.0, on_idle: Callable[[], None] | None = None):
        self.futures = futures
        self.on_idle = on_idle  # called from the worker when it has nothing to run (e.g. to flush usage)
        self.gap_timeout = gap_timeout  # a seq_id that never arrives stops blocking its lane after this
        self._lanes: dict[str, _Lane] = {}
        self._order: list[str] = []
        self._turn = 0
        self._cond = threading.Condition()
        self._stopped = False
        self.out_of_order = 0  # requests accepted before an earlier seq_id of their lane (the SDK's chunk order)
        self._thread = threading.Thread(target=self._loop, name="tinker-worker", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._cond:
            lane = self._lanes.get(job.lane)
            if lane is None:
                lane = self._lanes[job.lane] = _Lane()
                self._order.append(job.lane)
            if job.seq is None:
                lane.fifo.append(job)
            elif job.seq < lane.next_seq or job.seq in lane.ordered:
                self.futures.fail(job.future, f"seq_id {job.seq} of {job.lane} was already used", "user")
                return
            else:
                self.out_of_order += any(s not in lane.ordered for s in range(lane.next_seq, job.seq))
                lane.ordered[job.seq] = job
            self._cond.notify()

    def stats(self) -> dict:
        with self._cond:
            pending = sum(len(lane.ordered) + len(lane.fifo) for lane in self._lanes.values())
            return {"lanes": len(self._lanes), "pending": pending, "out_of_order_accepted": self.out_of_order}

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout=30)

    def _runnable(self, lane: _Lane, now: float) -> Job | None:
        if lane.next_seq in lane.ordered:
            lane.blocked_since = None
            job = lane.ordered.pop(lane.next_seq)
            lane.next_seq += 1
            return job
        if lane.ordered:
            lane.blocked_since = lane.blocked_since or now
            if now - lane.blocked_since > self.gap_timeout:  # the missing request is never coming
                first = min(lane.ordered)
                log.warning("lane %s: seq_id %d never arrived; continuing at %d", lane, lane.next_seq, first)
                lane.next_seq = first
                return self._runnable(lane, now)
        if lane.fifo:
            return lane.fifo.pop(0)
        return None

    def _pick(self) -> Job | None:
        now = time.monotonic()
        for i in range(len(self._order)):  # round robin over lanes: fair to every client
            name = self._order[(self._turn + i) % len(self._order)]
            job = self._runnable(self._lanes[name], now)
            if job is not None:
                self._turn = (self._turn + i + 1) % len(self._order)
                return job
        return None

    def _loop(self) -> None:
        while True:
            with self._cond:
                job = self._pick()
                if job is None and not self._stopped:
                    self._cond.wait(timeout=1.0)
                    job = self._pick()
                if job is None and self._stopped:
                    return
            if job is None:  # idle for a second: housekeeping, outside the lock so submits never wait on it
                if self.on_idle is not None:
                    try:
                        self.on_idle()
                    except Exception:  # noqa: BLE001 - housekeeping must not stop the worker
                        log.error("idle hook failed:\n%s", traceback.format_exc())
                continue
            try:
                payload, proto = job.run()
                self.futures.resolve(job.future, payload, proto)
            except RequestError as exc:
                self.futures.fail(job.future, str(exc), "user")
            except Exception:  # noqa: BLE001 - a bug fails its request, never the server; details stay in the log
                log.error("request %s failed:\n%s", job.future.request_id, traceback.format_exc())
                self.futures.fail(job.future, f"internal error in {job.future.request_id}; the server log has the "
                                              "details", "server")
