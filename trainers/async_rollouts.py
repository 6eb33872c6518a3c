"""Asynchronous rollouts: generation for the next K steps overlaps training of this one.

A single worker thread runs, in order, generation jobs and weight pushes. Step s's batch is submitted once
the trainer holds policy version s - K (version = optimiser steps taken), right after that version's
weights were pushed, so the generator samples it with weights at most K versions old; K = 0 is
synchronous. When the batch is consumed, `split_stale` drops groups whose recorded version is older than
s - K (a generator that restarted, lost an update or serves another trainer) and counts them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor


class RolloutPipeline:
    """`produce(step)` runs on the worker; `get(step)` waits for it; `advance(version)` submits the steps
    the new version unlocks; `run(fn)` queues other work (a weight push) in order with generation."""

    def __init__(self, produce: Callable[[int], object], start: int, total: int, max_staleness: int):
        self.produce = produce
        self.total = total
        self.k = max_staleness
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="rollouts")
        self.futures: dict[int, Future] = {}
        self.jobs: list[Future] = []  # other work (weight pushes): their errors surface in `get`
        self.next_step = start
        self.advance(start)

    def advance(self, version: int) -> None:
        """The trainer now holds `version`: queue generation of every step up to version + K."""
        while self.next_step <= min(version + self.k, self.total - 1):
            self.futures[self.next_step] = self.pool.submit(self.produce, self.next_step)
            self.next_step += 1

    def run(self, fn: Callable[[], object]) -> Future:
        job = self.pool.submit(fn)
        self.jobs.append(job)
        return job

    def get(self, step: int) -> tuple[object, float]:
        """(what produce(step) returned, seconds the trainer waited for it); re-raises its error, or the
        error of a queued job (a failed weight push) that ran before it."""
        t0 = time.perf_counter()
        out = self.futures.pop(step).result()
        for job in [j for j in self.jobs if j.done()]:
            self.jobs.remove(job)
            job.result()
        return out, time.perf_counter() - t0

    def close(self) -> None:
        for f in self.futures.values():
            f.cancel()
        self.pool.shutdown(wait=True)


def split_stale(groups: list, step: int, max_staleness: int) -> tuple[list, list, list[int]]:
    """(kept groups, dropped groups, staleness of each kept group): a group sampled by version v is
    `step - v` versions old at training step `step` (0-based; the policy then holds version `step`) and is
    dropped when that exceeds `max_staleness`. Groups of unknown version (-1) count as stale."""
    kept, dropped, ages = [], [], []
    for g in groups:
        age = step - g.version if g.version >= 0 else None
        if age is None or age > max_staleness:
            dropped.append(g)
        else:
            kept.append(g)
            ages.append(age)
    return kept, dropped, ages
