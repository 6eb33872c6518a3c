"""Curation on Ray (`--engine ray`): the same steps and dedup as the local engine, run on a cluster.

- Filters, PII and decontamination run as Ray Data `map_batches` with a class UDF (`StepUDF`) that builds
  the steps once per actor. Kept and removed rows come back in one stream, tagged with the index of the
  step that removed them (`_step`, -1 for kept), so counts per reason and per step are computed from the
  rows themselves: step counters stay in the workers, and the driver's writer cannot be pickled into them.
  The steps' other counters (redactions, benchmark matches) and times ride along as JSON on each batch.
- Dedup (`RayDedup`): MinHash signatures and band keys in `map_batches` with the compiled kernels; band
  keys hash-partitioned over tasks that group buckets with numpy (`minhash.bucket_pairs`, so the
  candidate pairs are the local engine's); exact-Jaccard verification in tasks over pair chunks with the
  candidates' shingle sets broadcast; connected components on the driver (union-find, `kernels.components`; past ~1e9 edges it
  would need large-star/small-star iterations as joins).
- The driver reads the input (any format `wb` reads) and puts it into the object store in the local
  engine's batches, and writes `data.parquet` / `removed.parquet` itself, in input order: the output is
  identical to the local engine's. Per-row metadata (ids, exact keys, band keys) also comes back to the
  driver, as in the local engine.

Ray costs a few seconds per job and about 1 GB of memory: one process stays the default.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.dedup import Batches, LocalDedup, _ShingleSets
from curate.removed import REMOVED_FIELDS, with_reasons
from workbench.errors import InputError

ENGINES = ("local", "ray")
STEP = "_step"  # index of the step that removed a row; -1 for kept rows
STATS = "_stats"  # JSON of the steps' times and counters for one batch, on its first row
ROW = "_row"  # global row number, added before rows enter the object store
OBJECT_STORE_BYTES = 1 << 30  # for a Ray started here; a cluster's own setting wins


def check_engine(engine: str, ray_address: str | None) -> None:
    """Raise `InputError` for an unknown engine or a Ray address without `--engine ray`."""
    if engine not in ENGINES:
        raise InputError(f"--engine {engine!r}: must be one of {', '.join(ENGINES)}")
    if ray_address and engine != "ray":
        raise InputError("--ray-address needs --engine ray")


@contextmanager
def ray_session(address: str | None = None) -> Iterator[object]:
    """`workbench.ray_session.ray_session` with Ray Data set up as the local engine writes: rows in input
    order, no progress bars."""
    from workbench.ray_session import ray_session as session

    with session(address, OBJECT_STORE_BYTES) as ray:
        from ray.data import DataContext

        ctx = DataContext.get_current()
        ctx.execution_options.preserve_order = True  # output rows in input order, as the local engine writes them
        ctx.enable_progress_bars = False
        yield ray


def _workers() -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _put_blocks(tables: Iterator[pa.Table], numbered: bool = False) -> list:
    """Each table into the object store as one block (optionally with its global `_row` numbers)."""
    import ray

    refs, start = [], 0
    for table in tables:
        if numbered:
            table = table.append_column(ROW, pa.array(np.arange(start, start + table.num_rows), pa.int64()))
        start += table.num_rows
        refs.append(ray.put(table))
    return refs


class StepUDF:
    """Runs the steps over one batch; the steps are built once per actor from `make_steps(fields)`."""

    def __init__(self, make_steps: Callable[[list[str]], list], fields: list[str]):
        self.steps = make_steps(fields)

    def __call__(self, table: pa.Table) -> pa.Table:
        parts, stats = [], {}
        for k, step in enumerate(self.steps):
            if table.num_rows == 0:
                break
            before, started = _counters(step), time.perf_counter()
            table, removed = step.process(table)
            stats[k] = {"seconds": time.perf_counter() - started, "counters": _delta(_counters(step), before)}
            if removed is not None and removed.num_rows:
                parts.append(_tag(removed, k))
        n = table.num_rows
        parts.append(_tag(with_reasons(table, [None] * n, [None] * n), -1))
        out = pa.concat_tables(parts, promote_options="permissive")
        # the steps' own counters (redactions, benchmark matches) and times ride on the first row
        note = [json.dumps(stats)] + [None] * (out.num_rows - 1)
        return out.append_column(STATS, pa.array(note, pa.string()))


def _counters(step) -> dict[str, dict]:
    """A step's counters beyond rows and drops: its attributes that map names to numbers."""
    return {name: dict(value) for name, value in vars(step).items()
            if name != "dropped" and isinstance(value, dict) and value
            and all(isinstance(v, int | float) for v in value.values())}


def _delta(after: dict[str, dict], before: dict[str, dict]) -> dict[str, dict]:
    return {name: {k: v - before.get(name, {}).get(k, 0) for k, v in counts.items()} for name, counts in after.items()}


def _tag(table: pa.Table, step: int) -> pa.Table:
    return table.append_column(STEP, pa.array(np.full(table.num_rows, step, dtype=np.int8)))


def run_steps_on_ray(tables: Iterator[pa.Table], make_steps: Callable[[list[str]], list], fields: list[str],
                     steps: list, write_removed: Callable[[pa.Table], None]) -> Iterator[pa.Table]:
    """The kept rows of every batch of `tables` after the steps, in order; removed rows go to
    `write_removed`, and `steps` (the driver's own instances) get their row counts from the stream."""
    import ray.data

    refs = _put_blocks(tables)
    if not refs:
        return
    from ray.data import ActorPoolStrategy

    ds = ray.data.from_arrow_refs(refs).map_batches(
        StepUDF, fn_constructor_args=(make_steps, fields), batch_size=None, batch_format="pyarrow",
        compute=ActorPoolStrategy(size=min(len(refs), _workers())))
    reach = Counter()  # rows that reached each step
    for out in ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=2):
        tags = out[STEP].to_numpy()
        kept_mask = tags == -1
        for k in range(len(steps)):
            reach[k] += int((kept_mask | (tags >= k)).sum())
        for note in out[STATS].drop_null().to_pylist():
            for k, got in json.loads(note).items():
                _merge(steps[int(k)], got)
        out = out.drop_columns([STATS])
        removed = out.filter(pa.array(~kept_mask))
        if removed.num_rows:
            for k, step in enumerate(steps):
                step.dropped.update(removed.filter(pc.equal(removed[STEP], k))["reason"].to_pylist())
            write_removed(removed.drop_columns([STEP]))
        yield out.filter(pa.array(kept_mask)).drop_columns([STEP, *REMOVED_FIELDS.names])
    for k, step in enumerate(steps):
        step.rows_in = reach[k]


def _merge(step, got: dict) -> None:
    """Add a worker's times and counters for one batch to the driver's instance of the step."""
    step.seconds += got["seconds"]
    for name, counts in got["counters"].items():
        mine = getattr(step, name, None)
        if isinstance(mine, dict):
            for key, value in counts.items():
                mine[key] = mine.get(key, 0) + value


class _HashUDF:
    """Pass 1 of dedup on one block: `curate.dedup.hash_batch`, packed into one Arrow table."""

    def __init__(self, hasher: Callable):
        self.hasher = hasher

    def __call__(self, table: pa.Table) -> pa.Table:
        light, lengths, keys, empty, sig, bands, _ = self.hasher(table.drop_columns([ROW]))
        out = {"_light": _pack(light), "length": lengths, "key": keys, "empty": empty}
        if sig is not None:
            out["sig"] = _matrix(sig)
            out["bands"] = _matrix(bands)
        return pa.table(out)


def _pack(table: pa.Table) -> pa.Array:
    return pa.StructArray.from_arrays([c.combine_chunks() for c in table.columns], table.column_names)


def _matrix(values: np.ndarray) -> pa.Array:
    return pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), values.shape[1])


def _unmatrix(column: pa.ChunkedArray, dtype) -> np.ndarray:
    array = column.combine_chunks()
    width = array.type.list_size
    return array.flatten().to_numpy().astype(dtype, copy=False).reshape(-1, width)


class RayDedup(LocalDedup):
    """Dedup's heavy parts on Ray (see the module docstring); the input goes to the object store once."""

    keeps_shingles = False  # the blocks stay in the object store, so verification rebuilds the sets there

    def __init__(self) -> None:
        self.refs: list | None = None

    def _blocks(self, batches: Batches) -> list:
        if self.refs is None:
            self.refs = _put_blocks(batches(), numbered=True)
        return self.refs

    def hash_rows(self, batches: Batches, hash_batch: Callable) -> Iterator[tuple]:
        import ray.data
        from ray.data import ActorPoolStrategy

        refs = self._blocks(batches)
        if not refs:
            return
        ds = ray.data.from_arrow_refs(refs).map_batches(
            _HashUDF, fn_constructor_args=(hash_batch,), batch_size=None, batch_format="pyarrow",
            compute=ActorPoolStrategy(size=min(len(refs), _workers())))
        for out in ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=2):
            light = pa.Table.from_struct_array(out["_light"].combine_chunks())
            sig = bands = None
            if "sig" in out.column_names:
                sig, bands = _unmatrix(out["sig"], np.uint32), _unmatrix(out["bands"], np.uint64)
            yield (light, out["length"].to_numpy(), out["key"].to_numpy(), out["empty"].to_numpy(zero_copy_only=False),
                   sig, bands, None)

    def candidate_pairs(self, keys: np.ndarray) -> np.ndarray:
        """Band keys hash-partitioned over tasks; each partition pairs its buckets with numpy."""
        from curate import minhash

        tasks = _tasks()
        n = keys.shape[0]
        if n == 0:
            return np.zeros((0, 2), dtype=np.int64)
        parts = max(2, _workers())
        chunk = -(-n // parts)
        maps = [tasks.partition.options(num_returns=parts).remote(keys[lo:lo + chunk], lo, parts)
                for lo in range(0, n, chunk)]
        reduces = [tasks.bucket_pairs.remote(*[m[p] for m in maps]) for p in range(parts)]
        return minhash.unique_pairs(_get(reduces))

    def shingle_sets(self, batches: Batches, fields: list[str], n: int, rows: np.ndarray,
                     spill: None = None) -> _ShingleSets:
        """The candidates' n-gram sets, rebuilt in one task per block (pass 1 kept none: `keeps_shingles`)."""
        import ray

        refs = self._blocks(batches)
        rows_ref = ray.put(rows)
        values, offsets, base = [np.zeros(0, np.uint64)], [np.zeros(1, np.int64)], 0
        for v, o in _get([_tasks().shingle_sets.remote(ref, rows_ref, fields, n) for ref in refs]):
            values.append(v)
            offsets.append(o[1:] + base)
            base += len(v)
        return _ShingleSets(rows, np.concatenate(values), np.concatenate(offsets))

    def jaccard(self, left: _ShingleSets, left_rows: np.ndarray, right: _ShingleSets,
                right_rows: np.ndarray) -> np.ndarray:
        """The exact-Jaccard kernel in tasks over chunks of pairs; the sets are broadcast once."""
        import ray

        if len(left_rows) == 0:
            return np.zeros(0)
        left_ref = ray.put(left)
        right_ref = left_ref if right is left else ray.put(right)
        chunk = -(-len(left_rows) // (2 * _workers()))
        parts = [_tasks().jaccard.remote(left_ref, left_rows[lo:lo + chunk], right_ref, right_rows[lo:lo + chunk])
                 for lo in range(0, len(left_rows), chunk)]
        return np.concatenate(_get(parts))

    def close(self) -> None:
        self.refs = None


def _get(refs: list) -> list:
    import ray

    return ray.get(refs)


def _partition(keys: np.ndarray, offset: int, parts: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(band, key, row) of a chunk of rows, split into `parts` by a hash of (band, key)."""
    rows_n, bands = keys.shape
    band = np.tile(np.arange(bands, dtype=np.int16), rows_n)
    key = keys.ravel()
    row = np.repeat(np.arange(offset, offset + rows_n, dtype=np.int64), bands)
    mixed = (key ^ (band.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))) * np.uint64(0xBF58476D1CE4E5B9)
    target = (mixed >> np.uint64(33)) % np.uint64(parts)
    out = []
    for p in range(parts):
        mask = target == p
        out.append((band[mask], key[mask], row[mask]))
    return out if parts > 1 else out[0]


def _bucket_pairs(*parts: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Candidate pairs of the buckets in one hash partition (`minhash.bucket_pairs` per band)."""
    from curate import minhash

    band = np.concatenate([p[0] for p in parts])
    key = np.concatenate([p[1] for p in parts])
    row = np.concatenate([p[2] for p in parts])
    out = []
    for b in np.unique(band):
        mask = band == b
        out.append(minhash.bucket_pairs(key[mask], row[mask]))
    return minhash.unique_pairs(out)


def _block_sets(block: pa.Table, rows: np.ndarray, fields: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(values, offsets) of the n-gram sets of the rows of `rows` (sorted) that lie in this block."""
    from curate import kernels
    from curate.fields import field_text
    from curate.normalize import text_ngrams

    numbers = block[ROW].to_numpy()
    first = int(numbers[0]) if len(numbers) else 0
    lo, hi = np.searchsorted(rows, [first, first + len(numbers)])
    if hi == lo:
        return np.zeros(0, np.uint64), np.zeros(1, np.int64)
    shingles, docs = text_ngrams(field_text(block, fields).take(pa.array(rows[lo:hi] - first)), n)
    return kernels.unique_sets(shingles, docs, int(hi - lo))


def _jaccard(left: _ShingleSets, left_rows: np.ndarray, right: _ShingleSets, right_rows: np.ndarray) -> np.ndarray:
    from curate import kernels

    return kernels.jaccard(left.values, left.offsets, left_rows, right.values, right.offsets, right_rows)


_TASKS = None


def _tasks():
    """The remote functions, made on first use (importing Ray only when the engine runs)."""
    global _TASKS
    if _TASKS is None:
        import types

        import ray

        _TASKS = types.SimpleNamespace(partition=ray.remote(_partition), bucket_pairs=ray.remote(_bucket_pairs),
                                       shingle_sets=ray.remote(_block_sets), jaccard=ray.remote(_jaccard))
    return _TASKS
