"""The step contract, after datatrove: a step maps Arrow batches to Arrow batches; a filter only answers,
per row, keep (`True`) or drop (`(False, reason)` or `(False, reason, detail)`).

The base classes count rows, time themselves and hand dropped rows (with `reason` and `detail`) to
`on_removed`, so a filter holds no bookkeeping. `Step.apply(table)` is a pure function of one batch,
which is what Ray Data's `map_batches` needs; `Step.run(tables, rank, world_size)` shards a stream.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa

from curate.fields import field_text
from curate.removed import with_reasons

Decision = bool | tuple[bool, str] | tuple[bool, str, str]


class Step(ABC):
    """A batch transform that may remove rows; subclasses implement `process`."""

    name = "step"

    def __init__(self, fields: list[str]):
        self.fields = fields
        self.rows_in = 0
        self.dropped: Counter[str] = Counter()
        self.seconds = 0.0
        self.on_removed: Callable[[pa.Table], None] | None = None

    @abstractmethod
    def process(self, table: pa.Table) -> tuple[pa.Table, pa.Table | None]:
        """(kept rows, removed rows with reason columns or None) for one batch."""

    def apply(self, table: pa.Table) -> pa.Table:
        """Process one batch, count and time it, pass removed rows on; return the kept rows."""
        started = time.perf_counter()
        kept, removed = self.process(table)
        self.rows_in += table.num_rows
        self.seconds += time.perf_counter() - started
        if removed is not None and removed.num_rows:
            self.dropped.update(removed["reason"].to_pylist())
            if self.on_removed is not None:
                self.on_removed(removed)
        return kept

    def run(self, tables: Iterable[pa.Table], rank: int = 0, world_size: int = 1) -> Iterator[pa.Table]:
        """Apply the step to this rank's share of `tables` (every `world_size`-th batch)."""
        for i, table in enumerate(tables):
            if i % world_size == rank:
                yield self.apply(table)

    def stats(self) -> dict:
        return {"rows_in": self.rows_in, "dropped": dict(self.dropped), "seconds": round(self.seconds, 3)}

    def texts(self, table: pa.Table) -> pa.Array:
        return field_text(table, self.fields)


class Filter(Step):
    """A step that keeps or drops rows; implement `filter(text)` or, vectorised, `decide(texts)`."""

    name = "filter"

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.filter is Filter.filter and cls.decide is Filter.decide:
            raise TypeError(f"{cls.__name__} must implement filter(text) or decide(texts)")

    def filter(self, text: str) -> Decision:
        return self.decide(pa.array([text], pa.large_string()))[0]

    def decide(self, texts: pa.Array) -> list[Decision]:
        return [self.filter(t) for t in texts.to_pylist()]

    def process(self, table: pa.Table) -> tuple[pa.Table, pa.Table | None]:
        return split_decisions(table, self.decide(self.texts(table)))


def split_decisions(table: pa.Table, decisions: list[Decision]) -> tuple[pa.Table, pa.Table | None]:
    """(kept rows, removed rows with `reason` and `detail`, or None) for one decision per row."""
    keep = np.array([d is True or (isinstance(d, tuple) and d[0]) for d in decisions], dtype=bool)
    if keep.all():
        return table, None
    drop = np.flatnonzero(~keep)
    reasons = [decisions[i][1] for i in drop]
    details = [decisions[i][2] if len(decisions[i]) > 2 else None for i in drop]
    return table.filter(pa.array(keep)), with_reasons(table.take(pa.array(drop)), reasons, details)


def run_steps(table: pa.Table, steps: list[Step]) -> pa.Table:
    """Pass one batch through every step in order; removed rows go to each step's `on_removed`."""
    for step in steps:
        if table.num_rows == 0:
            break
        table = step.apply(table)
    return table
