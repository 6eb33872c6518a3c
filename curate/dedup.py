"""Exact and MinHash near dedup over a stream of Arrow batches, with every removal explained.

Pass 1 hashes each row's normalised text (exact key) and its word n-grams in one compiled sweep per
row (`minhash.sketch`): the MinHash signature is spilled to disk as raw uint32, the LSH band keys kept
in memory, and the n-gram hashes kept as uint64 (8 bytes a word; in memory up to 128 MiB, spilled to
the run directory past that) so that verification takes the candidates' sets from them instead of
re-reading and re-tokenising the input.
Exact duplicates go first; near duplicates come from LSH band collisions that are verified (exact
Jaccard of n-gram sets, or the signature estimate) before connected components, so chains of
unverified collisions cannot build giant clusters. One row per cluster is kept by the
keep policy; `--against RUN_DIR` also removes rows that duplicate the kept rows of an earlier run.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import minhash
from curate.fields import field_text
from curate.keep import keep_rank, score_column
from curate.normalize import text_ngrams, tokenize
from curate.removed import with_reasons
from workbench.config import RunOptions, option
from workbench.errors import InputError
from workbench.runfiles import DEDUP_INDEX, PRODUCT, SIGNATURES, temp_path

Batches = Callable[[], Iterator[pa.Table]]
SHINGLE_SPILL = ".shingles.u64"
HASHING = "fnv1a-fmix64 words, multiply-add-shift on 32-bit keys"  # bump when keys or signatures change


@dataclass
class DedupConfig(RunOptions):
    field: list[str] = option([], "fields to compare: columns, `messages`, `messages.prompt`, `messages.response` "
                                  "(default: by record kind)")
    exact: bool = option(True, "remove rows whose normalised text is identical")
    near: bool = option(True, "remove near duplicates with MinHash LSH")
    threshold: float = option(0.8, "Jaccard similarity of word n-gram sets at or above which rows are near duplicates")
    num_perm: int = option(128, "MinHash permutations (signature length, uint32 each)")
    ngram: int = option(5, "words per shingle; shorter documents form one shingle of all their words")
    recall: float = option(0.95, "detection probability at the threshold that bands x rows must reach")
    verify: str = option("jaccard", "check candidates by exact Jaccard of n-gram sets or by the signature estimate",
                         choices=["jaccard", "signature"])
    keep: str = option("first", "which row of a group to keep: first, longest, score:COL, source-priority")
    source_priority: list[str] = option([], "sources in order of preference for --keep source-priority "
                                            "(default: the order the inputs are given)")
    max_cluster_size: int = option(1000, "clusters larger than this are flagged and only rows verified "
                                         "directly against the kept row are removed", min=1)
    seed: int = option(1, "seed of the MinHash permutations (must match an --against run)")
    against: str | None = option(None, "an earlier run directory; rows duplicating its kept rows are removed")


class SignatureFile:
    """uint32 signatures (rows x num_perm) in a file, read in bounded blocks or by row so that they never
    all sit in memory (a memory map would count every touched page in the process's RSS)."""

    def __init__(self, path: Path, rows: int, num_perm: int, offset: int = 0):
        self.path, self.offset = path, offset
        self.shape = (rows, num_perm)

    @classmethod
    def from_npy(cls, path: Path) -> SignatureFile:
        mapped = np.load(path, mmap_mode="r")
        return cls(path, mapped.shape[0], mapped.shape[1], int(mapped.offset))

    def block(self, lo: int, hi: int) -> np.ndarray:
        width = self.shape[1]
        return np.fromfile(self.path, dtype=np.uint32, count=(hi - lo) * width,
                           offset=self.offset + lo * width * 4).reshape(-1, width)

    def take(self, rows: np.ndarray) -> np.ndarray:
        mapped = np.memmap(self.path, dtype=np.uint32, mode="r", offset=self.offset, shape=self.shape)
        out = np.array(mapped[rows])
        del mapped
        return out

    def iter_rows(self, rows: np.ndarray | None = None, block_rows: int = 65536) -> Iterator[np.ndarray]:
        """The signatures of `rows` (sorted; default all), in order, one block of the file at a time."""
        for lo in range(0, self.shape[0], block_rows):
            hi = min(lo + block_rows, self.shape[0])
            block = self.block(lo, hi)
            if rows is None:
                yield block
            else:
                a, b = np.searchsorted(rows, [lo, hi])
                yield block[rows[a:b] - lo]


def check_dedup_config(config: DedupConfig) -> None:
    """Raise `InputError` for settings that cannot work."""
    from curate.keep import check_policy

    check_policy(config.keep)
    if not 0.0 < config.threshold <= 1.0:
        raise InputError(f"--threshold {config.threshold}: expected a Jaccard similarity in (0, 1]")
    if config.num_perm < 2 or config.ngram < 1:
        raise InputError("--num-perm must be at least 2 and --ngram at least 1")
    if not 0.0 < config.recall < 1.0:
        raise InputError(f"--recall {config.recall}: expected a probability in (0, 1)")


class RowIds:
    """The `id` of every input row, held as one Arrow array (not a million Python strings)."""

    def __init__(self, chunks: list[pa.Array]):
        self.array = pa.chunked_array(chunks, pa.large_string()).combine_chunks() if chunks \
            else pa.array([], pa.large_string())

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, row) -> str:
        return self.array[int(row)].as_py()

    def take(self, rows: np.ndarray) -> list[str]:
        return self.array.take(pa.array(rows, pa.int64())).to_pylist()


@dataclass
class DedupPlan:
    """Per-row outcome in input order: `reason[i]` is None for a kept row."""

    ids: RowIds
    reason: np.ndarray
    detail: np.ndarray
    duplicate_of: np.ndarray
    cluster_id: np.ndarray
    similarity: np.ndarray
    stats: dict = field(default_factory=dict)

    def remove(self, rows: np.ndarray, reason: str, details, dups, clusters, sims) -> None:
        self.reason[rows] = reason
        self.detail[rows] = details
        self.duplicate_of[rows] = dups
        self.cluster_id[rows] = clusters
        self.similarity[rows] = sims


@dataclass
class _Pass1:
    ids: list[pa.Array] = field(default_factory=list)
    sources: list[np.ndarray] = field(default_factory=list)  # codes into `source_names`
    source_names: dict[str, int] = field(default_factory=dict)
    lengths: list[np.ndarray] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)
    keys: list[np.ndarray] = field(default_factory=list)
    empty: list[np.ndarray] = field(default_factory=list)
    band_keys: list[np.ndarray] = field(default_factory=list)


class LocalDedup:
    """Where dedup's heavy parts run: in this process, batches hashed on a thread pool. The Ray engine
    (`curate.ray_engine.RayDedup`) runs the same functions on a cluster and returns the same values."""

    keeps_shingles = True  # pass 1 spills n-gram hashes for verification (the Ray engine rebuilds them)

    def hash_rows(self, batches: Batches, hash_batch: Callable) -> Iterator[tuple]:
        """`hash_batch(table)` for every batch, in order."""
        # Arrow compute and numpy release the GIL, so batches hash in parallel threads (results stay in order).
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            yield from _ordered_map(pool, hash_batch, batches(), ahead=4)

    def candidate_pairs(self, keys: np.ndarray) -> np.ndarray:
        return minhash.candidate_pairs(keys)

    def shingle_sets(self, batches: Batches, fields: list[str], n: int, rows: np.ndarray,
                     spill: ShingleFile | None = None) -> _ShingleSets:
        return spill.sets(rows) if spill is not None else _shingle_sets(batches, fields, n, rows)

    def jaccard(self, left: _ShingleSets, left_rows: np.ndarray, right: _ShingleSets,
                right_rows: np.ndarray) -> np.ndarray:
        """Exact Jaccard of set `left_rows[k]` of `left` and set `right_rows[k]` of `right`, per k."""
        from curate import kernels

        return kernels.jaccard(left.values, left.offsets, left_rows, right.values, right.offsets, right_rows)

    def close(self) -> None:
        pass


def hash_batch(table: pa.Table, fields: list[str], config: DedupConfig, a: np.ndarray, b: np.ndarray,
               params: minhash.LshParams, score_col: str | None, keep_shingles: bool = False) -> tuple:
    """Pass 1 on one batch: (id/source/score columns, text lengths, exact keys, empty flags, MinHash
    signatures, LSH band keys, [(n-gram hashes, n-grams per row) per slice of rows]); the last three are
    None without near dedup, the last also without `keep_shingles`."""
    text = field_text(table, fields)
    lengths = pc.fill_null(pc.utf8_length(text), 0).to_numpy(zero_copy_only=False)
    sig = band_keys = shingles = None
    if config.near:
        # slices of a few MB keep the sweep's buffers small and reused (a batch of web pages is ~25 MB)
        parts = [minhash.sketch(text.slice(lo, hi - lo), config.ngram, a, b, keep_shingles)
                 for lo, hi in _slices(text)]
        keys, empty = np.concatenate([p.keys for p in parts]), np.concatenate([p.empty for p in parts])
        sig = np.concatenate([p.sig for p in parts])
        band_keys = minhash.band_keys(sig, params)
        if keep_shingles:
            shingles = [(p.shingles, p.counts) for p in parts]
    else:
        tokens = tokenize(text)
        keys, empty = tokens.keys, tokens.empty
    light = table.select(["id", "source"] + ([score_col] if score_col and score_col in table.column_names else []))
    return light, lengths, keys, empty, sig, band_keys, shingles


def _slices(text: pa.Array, max_bytes: int = 1 << 22) -> list[tuple[int, int]]:
    """(first, stop) row ranges of `text` of about `max_bytes` of text each (at least one row each)."""
    ends = np.cumsum(pc.fill_null(pc.binary_length(text), 0).to_numpy(zero_copy_only=False))
    cuts = np.unique(np.searchsorted(ends, np.arange(max_bytes, ends[-1] if len(ends) else 0, max_bytes)) + 1)
    bounds = np.r_[0, cuts[cuts < len(text)], len(text)]
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))


def plan_dedup(batches: Batches, fields: list[str], config: DedupConfig, workdir: Path,
               engine: LocalDedup | None = None) -> DedupPlan:
    """Decide, for every row of `batches()`, whether it is kept or removed as a duplicate (and of what).
    `engine` runs the heavy parts (default: this process)."""
    engine = engine or LocalDedup()
    a, b = minhash.permutations(config.num_perm, config.seed)
    params = minhash.choose_bands(config.num_perm, config.threshold, config.recall)
    score_col = score_column(config.keep)
    keep_shingles = config.near and config.verify == "jaccard" and engine.keeps_shingles
    shingle_file = ShingleFile(workdir / SHINGLE_SPILL) if keep_shingles else None
    hasher = partial(hash_batch, fields=fields, config=config, a=a, b=b, params=params, score_col=score_col,
                     keep_shingles=keep_shingles)
    try:
        return _plan(batches, fields, config, workdir, engine, hasher, score_col, shingle_file)
    finally:
        if shingle_file is not None:
            shingle_file.remove()


def _plan(batches: Batches, fields: list[str], config: DedupConfig, workdir: Path, engine: LocalDedup,
          hasher: Callable, score_col: str | None, shingle_file: ShingleFile | None) -> DedupPlan:
    """Pass 1 (`hasher` on every batch), then exact and near dedup: `plan_dedup` without the cleanup."""
    spill = workdir / ".signatures.u32"
    p1 = _Pass1()
    with open(spill, "wb") as sig_file:
        for table, lengths, keys, empty, sig, band_keys, shingles in engine.hash_rows(batches, hasher):
            p1.ids.append(table["id"].combine_chunks().cast(pa.large_string()))
            p1.sources.append(_source_codes(table["source"], p1.source_names))
            p1.lengths.append(lengths)
            p1.keys.append(keys)
            p1.empty.append(empty)
            if score_col:
                p1.scores.append(_scores(table, score_col))
            if sig is not None:
                sig_file.write(sig.tobytes())
                p1.band_keys.append(band_keys)
            if shingle_file is not None:
                for part in shingles:
                    shingle_file.append(*part)
    if shingle_file is not None:
        shingle_file.close()
    ids = RowIds(p1.ids)
    n = len(ids)
    plan = DedupPlan(ids, *(np.full(n, None, dtype=object) for _ in range(4)), np.full(n, np.nan))
    if n == 0:
        spill.unlink(missing_ok=True)
        return plan
    keys, empty = np.concatenate(p1.keys), np.concatenate(p1.empty)
    rank = keep_rank(config.keep, np.concatenate(p1.lengths), np.concatenate(p1.scores) if score_col else None,
                     _source_rank(np.concatenate(p1.sources), list(p1.source_names), config.source_priority))
    plan.remove(np.flatnonzero(empty), "empty_text", "no words left after normalisation", None, None, None)
    ref = load_reference(Path(config.against), config) if config.against else None
    if ref is not None:
        _exact_against(plan, keys, ref)
    if config.exact:
        _exact(plan, keys, rank)
    sig = SignatureFile(spill, n, config.num_perm) if config.near else None
    if config.near:
        band_keys = np.concatenate(p1.band_keys)
        p1.band_keys.clear()
        _near(plan, batches, fields, config, sig, band_keys, rank, ref, engine, shingle_file)
    plan.stats["keys"], plan.stats["signatures"] = keys, sig
    return plan


def _ordered_map(pool: ThreadPoolExecutor, fn: Callable, items: Iterator, ahead: int) -> Iterator:
    """`map(fn, items)` on `pool`, in order, with at most `ahead` items in flight (bounded memory)."""
    pending: deque = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _scores(table: pa.Table, column: str) -> np.ndarray:
    if column not in table.column_names:
        raise InputError(f"--keep score:{column}: no column {column!r}; columns are {table.column_names}")
    try:
        return pc.cast(table[column], pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InputError(f"--keep score:{column}: column {column!r} is not numeric ({exc})") from None


def _source_codes(column: pa.ChunkedArray, names: dict[str, int]) -> np.ndarray:
    """Each row's source as a code into `names` (source -> code, in order of first appearance)."""
    encoded = pc.dictionary_encode(pc.fill_null(column.combine_chunks().cast(pa.large_string()), ""))
    local = np.array([names.setdefault(v, len(names)) for v in encoded.dictionary.to_pylist()], dtype=np.int64)
    return local[encoded.indices.to_numpy(zero_copy_only=False)] if len(local) else np.zeros(0, np.int64)


def _source_rank(codes: np.ndarray, names: list[str], priority: list[str]) -> np.ndarray:
    """Rank of each row's source: the `priority` sources in that order, then the others as first seen."""
    order = list(priority) + [s for s in names if s not in priority]
    position = {s: i for i, s in enumerate(order)}
    return np.array([position[s] for s in names], dtype=np.int64)[codes]


def _exact(plan: DedupPlan, keys: np.ndarray, rank: np.ndarray) -> None:
    alive = np.flatnonzero(plan.reason == None)  # noqa: E711 (elementwise on an object array)
    if len(alive) == 0:
        return
    order = alive[np.lexsort((rank[alive], keys[alive]))]
    sorted_keys = keys[order]
    first = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
    keeper = order[np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))]
    dups = order[~first]
    kept_ids = plan.ids.take(keeper[~first])
    plan.remove(dups, "exact_duplicate", [f"same normalised text as {k}" for k in kept_ids], kept_ids,
                [f"exact-{int(k):016x}" for k in keys[dups]], 1.0)
    plan.stats["exact_groups"] = int(len(np.unique(keys[dups])))


def _exact_against(plan: DedupPlan, keys: np.ndarray, ref: Reference) -> None:
    alive = np.flatnonzero(plan.reason == None)  # noqa: E711
    order = np.argsort(ref.keys)
    pos = np.searchsorted(ref.keys[order], keys[alive])
    pos = np.minimum(pos, len(order) - 1)
    hit = (len(order) > 0) & (ref.keys[order][pos] == keys[alive])
    rows, match = alive[hit], order[pos[hit]]
    kept_ids = [ref.ids[m] for m in match]
    plan.remove(rows, "exact_duplicate", [f"same normalised text as {k} in {ref.path}" for k in kept_ids],
                kept_ids, [f"exact-{int(k):016x}" for k in keys[rows]], 1.0)


@dataclass
class Reference:
    """The kept rows of an earlier run: ids, exact keys and (when it ran near dedup) signatures."""

    path: Path
    ids: list[str]
    keys: np.ndarray
    sig: SignatureFile | None


def load_reference(path: Path, config: DedupConfig) -> Reference:
    """Read an earlier run's dedup index; raise `InputError` if it has none or used other MinHash settings."""
    from workbench.rundir import read_manifest

    manifest = read_manifest(path)
    if not (path / DEDUP_INDEX).exists():
        raise InputError(f"--against {path}: the run holds no {DEDUP_INDEX}; use a run of `wb dedup` or `wb curate`")
    import pyarrow.parquet as pq

    index = pq.read_table(path / DEDUP_INDEX)
    made_with = (manifest.get("minhash") or {}).get("hashing")
    if made_with != HASHING:
        raise InputError(f"--against {path}: its keys were hashed by an older version ({made_with or 'unnamed'}); "
                         "re-run that dedup with this version")
    sig = None
    if config.near:
        settings = manifest.get("minhash") or {}
        wanted = {"num_perm": config.num_perm, "ngram": config.ngram, "seed": config.seed}
        if not (path / SIGNATURES).exists() or {k: settings.get(k) for k in wanted} != wanted:
            raise InputError(f"--against {path}: its signatures were made with {settings or 'no near dedup'}, "
                             f"not {wanted}; re-run it with these settings or pass --no-near")
        sig = SignatureFile.from_npy(path / SIGNATURES)
    return Reference(path, index["id"].to_pylist(), index["exact_key"].to_numpy(), sig)


def _near(plan: DedupPlan, batches: Batches, fields: list[str], config: DedupConfig, sig: SignatureFile,
          band_keys: np.ndarray, rank: np.ndarray, ref: Reference | None, engine: LocalDedup,
          shingle_file: ShingleFile | None = None) -> None:
    """Near duplicates among the rows still alive (`band_keys`: every row's LSH keys, from pass 1)."""
    params = minhash.choose_bands(config.num_perm, config.threshold, config.recall)
    alive = np.flatnonzero(plan.reason == None)  # noqa: E711
    plan.stats["lsh"] = {"bands": params.bands, "rows": params.rows,
                         "detection": minhash.detection_curve(params, config.threshold)}
    if len(alive) == 0:
        return
    m = 0 if ref is None or ref.sig is None else ref.sig.shape[0]
    keys = band_keys[alive] if len(alive) < len(band_keys) else band_keys
    if m:
        keys = np.concatenate([_band_keys(ref.sig, params), keys])
    pairs = engine.candidate_pairs(keys)
    pairs = pairs[pairs[:, 1] >= m]  # a pair inside the reference is not ours to judge
    sims = _verify(pairs, m, alive, sig, ref, batches, fields, config, engine, shingle_file)
    edges, edge_sims = pairs[sims >= config.threshold], sims[sims >= config.threshold]
    plan.stats.update(candidate_pairs=int(len(pairs)), verified_pairs=int(len(edges)))
    _clusters(plan, edges, edge_sims, m, alive, rank, ref, config.max_cluster_size)


def _band_keys(sig: SignatureFile, params: minhash.LshParams) -> np.ndarray:
    parts = [minhash.band_keys(block, params) for block in sig.iter_rows()]
    return np.concatenate(parts) if parts else np.zeros((0, params.bands), dtype=np.uint64)


def _verify(pairs: np.ndarray, m: int, alive: np.ndarray, sig: SignatureFile, ref: Reference | None,
            batches: Batches, fields: list[str], config: DedupConfig, engine: LocalDedup,
            shingle_file: ShingleFile | None = None) -> np.ndarray:
    """Similarity of each candidate pair: exact Jaccard of n-gram sets, or the signature estimate.

    Reference rows are read back from the earlier run's `data.parquet` (only the candidates), so
    pairs against it are verified the same way; the estimate is used only when asked for, or when
    the reference lacks the compared fields.
    """
    left, right = pairs[:, 0], alive[pairs[:, 1] - m]
    against = left < m
    left_rows = np.where(against, left, alive[np.maximum(left - m, 0)])
    if config.verify == "signature" or not len(pairs):
        return _estimate(pairs, m, alive, sig, ref)
    sets = engine.shingle_sets(batches, fields, config.ngram, np.unique(np.r_[left_rows[~against], right]),
                               shingle_file)
    left_sets = sets
    if against.any():
        ref_batches = parquet_batches(ref.path / PRODUCT)
        names = set(next(iter(ref_batches()), pa.table({})).column_names)
        if not all(("messages" if f.startswith("messages") else f) in names for f in fields):
            return _estimate(pairs, m, alive, sig, ref)
        ref_sets = _shingle_sets(ref_batches, fields, config.ngram, np.unique(left_rows[against]))
        left_sets = _ShingleSets.concat(sets, ref_sets)
        left_rows = np.where(against, len(sets.rows) + np.searchsorted(ref_sets.rows, left_rows),
                             np.searchsorted(sets.rows, left_rows))
    else:
        left_rows = np.searchsorted(sets.rows, left_rows)
    return engine.jaccard(left_sets, left_rows, sets, np.searchsorted(sets.rows, right))


def _estimate(pairs: np.ndarray, m: int, alive: np.ndarray, sig: SignatureFile, ref: Reference | None) -> np.ndarray:
    sims = np.empty(len(pairs))
    for lo in range(0, len(pairs), 65536):
        part = pairs[lo:lo + 65536]
        right = sig.take(alive[part[:, 1] - m])
        against = part[:, 0] < m
        left = np.empty_like(right)
        if against.any():
            left[against] = ref.sig.take(part[against, 0])
        left[~against] = sig.take(alive[part[~against, 0] - m])
        sims[lo:lo + 65536] = (left == right).mean(axis=1)
    return sims


def parquet_batches(path: Path) -> Batches:
    """A re-readable stream of a parquet file's rows as tables of 8192 rows."""
    import pyarrow.parquet as pq

    def batches() -> Iterator[pa.Table]:
        for batch in pq.ParquetFile(path, pre_buffer=False).iter_batches(batch_size=8192):
            yield pa.Table.from_batches([batch])
    return batches


@dataclass
class _ShingleSets:
    """Sorted distinct n-gram hashes of some rows: row k's set is values[offsets[k]:offsets[k + 1]]."""

    rows: np.ndarray
    values: np.ndarray
    offsets: np.ndarray

    @staticmethod
    def concat(a: _ShingleSets, b: _ShingleSets) -> _ShingleSets:
        """a's sets, then b's (set indices of b shift by len(a.rows))."""
        return _ShingleSets(np.r_[a.rows, b.rows], np.r_[a.values, b.values], np.r_[a.offsets[:-1], b.offsets + a.offsets[-1]])


class ShingleFile:
    """Every row's n-gram hashes from pass 1 (uint64, rows back to back), so that verification takes only
    the candidates' back, in bounded blocks, instead of re-reading and re-tokenising the input. They stay
    in memory up to `memory` bytes and go to a file in the run directory past that (a 1M-document corpus
    never holds them all). Jaccard over these 64-bit hashes is the Jaccard of the n-gram sets up to
    64-bit hash collisions (about k^2 / 2^65 for k distinct n-grams: negligible)."""

    BLOCK = 1 << 22  # values taken at once (32 MiB)
    MEMORY = 1 << 27  # bytes held in memory before the rest spills (128 MiB, 16M n-grams)

    def __init__(self, path: Path, memory: int | None = None):
        self.path, self.memory = path, self.MEMORY if memory is None else memory
        self.file = None
        self.held: list[np.ndarray] = []  # pieces not (yet) written
        self.held_bytes = 0
        self.counts: list[np.ndarray] = []
        self.offsets = np.zeros(1, np.int64)

    def append(self, shingles: np.ndarray, counts: np.ndarray) -> None:
        self.counts.append(counts)
        if self.file is None and self.held_bytes + shingles.nbytes <= self.memory:
            self.held.append(shingles)
            self.held_bytes += shingles.nbytes
            return
        if self.file is None:
            self.file = open(self.path, "wb")  # noqa: SIM115 (closed by close(), removed by remove())
            for piece in self.held:
                self.file.write(piece.tobytes())
            self.held, self.held_bytes = [], 0
        self.file.write(shingles.tobytes())

    def close(self) -> None:
        """The end of pass 1: every row's hashes are in."""
        if self.file is not None:
            self.file.close()
        self.offsets = np.r_[0, np.cumsum(np.concatenate(self.counts))] if self.counts else np.zeros(1, np.int64)
        self.counts.clear()
        self.starts = np.r_[0, np.cumsum([len(piece) for piece in self.held])]

    def remove(self) -> None:
        if self.file is not None:
            self.file.close()
        self.held = []
        self.path.unlink(missing_ok=True)

    def _groups(self, starts: np.ndarray, ends: np.ndarray) -> Iterator[tuple[int, int, np.ndarray, int]]:
        """(lo, hi, values, first): rows lo..hi-1 of the wanted ones lie in `values`, which begin at value
        `first`. In memory each piece (whole rows of one append) is one group, taken as it is; from the
        file, one read per window of nearby rows (a new one at a long gap or a block boundary)."""
        if self.file is None:
            piece = np.searchsorted(self.starts, starts, side="right") - 1
            cut = np.flatnonzero(piece[1:] != piece[:-1]) + 1
            for lo, hi in zip(np.r_[0, cut], np.r_[cut, len(starts)], strict=True):
                yield lo, hi, self.held[piece[lo]], int(self.starts[piece[lo]])
            return
        window = starts // self.BLOCK
        cut = np.flatnonzero((starts[1:] - ends[:-1] > self.BLOCK // 8) | (window[1:] != window[:-1])) + 1
        for lo, hi in zip(np.r_[0, cut], np.r_[cut, len(starts)], strict=True):
            first = int(starts[lo])
            yield lo, hi, np.fromfile(self.path, dtype=np.uint64, count=int(ends[hi - 1]) - first,
                                      offset=first * 8), first

    def sets(self, rows: np.ndarray) -> _ShingleSets:
        """The sorted distinct n-gram hashes of `rows` (sorted, unique)."""
        from curate import kernels

        values, offsets, base = [np.zeros(0, np.uint64)], [np.zeros(1, np.int64)], 0
        starts, ends = self.offsets[rows], self.offsets[rows + 1]
        for lo, hi, block, first in self._groups(starts, ends) if len(rows) else ():
            lengths = ends[lo:hi] - starts[lo:hi]
            bounds = np.r_[0, np.cumsum(lengths)]
            take = np.arange(bounds[-1]) + np.repeat(starts[lo:hi] - first - bounds[:-1], lengths)
            v, o = kernels.sorted_sets(block[take], bounds)
            values.append(v)
            offsets.append(o[1:] + base)
            base += len(v)
        return _ShingleSets(rows, np.concatenate(values), np.concatenate(offsets))


def _shingle_sets(batches: Batches, fields: list[str], n: int, rows: np.ndarray) -> _ShingleSets:
    """The n-gram sets of the given rows (sorted row numbers), read in a second pass."""
    from curate import kernels

    values, doc_of = [np.zeros(0, np.uint64)], [np.zeros(0, np.int64)]
    start = 0
    for table in batches():
        lo, hi = np.searchsorted(rows, [start, start + table.num_rows])
        if hi > lo:
            shingles, docs = text_ngrams(field_text(table, fields).take(pa.array(rows[lo:hi] - start)), n)
            values.append(shingles)
            doc_of.append(docs + lo)
        start += table.num_rows
    return _ShingleSets(rows, *kernels.unique_sets(np.concatenate(values), np.concatenate(doc_of), len(rows)))


def _clusters(plan: DedupPlan, edges: np.ndarray, edge_sims: np.ndarray, m: int, alive: np.ndarray,
              rank: np.ndarray, ref: Reference | None, cap: int) -> None:
    """Connected components of verified edges; keep one row per component, remove the rest."""
    # not scipy's connected_components: scipy.sparse.csgraph imports scipy.linalg (0.15 s of start-up)
    from curate import kernels

    nodes = m + len(alive)
    labels = kernels.components(np.ascontiguousarray(edges, dtype=np.int64).reshape(-1, 2), nodes)
    sizes = np.bincount(labels)
    node_rank = np.r_[np.arange(m) - m, rank[alive]]  # reference rows outrank every new row
    order = np.lexsort((node_rank, labels))
    first = np.r_[True, labels[order][1:] != labels[order][:-1]]
    keeper_of_label = np.empty(len(sizes), dtype=np.int64)
    keeper_of_label[labels[order][first]] = order[first]
    edge_sim = {(int(i), int(j)): float(s) for (i, j), s in zip(edges, edge_sims, strict=True)}
    best = _best_neighbour(edges, edge_sims, nodes)
    rows, details, dups, clusters, sims = [], [], [], [], []
    for node in np.flatnonzero((sizes[labels] > 1) & (np.arange(nodes) >= m)):
        label = labels[node]
        keeper = int(keeper_of_label[label])
        if keeper == node:
            continue
        direct = edge_sim.get((min(keeper, node), max(keeper, node)))
        if sizes[label] > cap and direct is None:
            continue  # oversized cluster: without a direct verified edge to the kept row, keep it
        keeper_id = ref.ids[keeper] if keeper < m else plan.ids[alive[keeper - m]]
        neighbour = int(best[node, 0])
        sim = direct if direct is not None else best[node, 1]
        via = "" if direct is not None else f" via {_node_id(plan, ref, alive, m, neighbour)}"
        rows.append(alive[node - m])
        details.append(f"jaccard {sim:.3f} with {keeper_id}{via} (cluster of {sizes[label]})")
        dups.append(keeper_id)
        clusters.append(f"near-{label}")
        sims.append(round(float(sim), 4))
    oversized = int((sizes > cap).sum())
    plan.remove(np.array(rows, dtype=np.int64), "near_duplicate", details, dups, clusters, sims)
    plan.stats.update(clusters=int((sizes > 1).sum()), largest_cluster=int(sizes.max(initial=0)),
                      oversized_clusters=oversized)


def _best_neighbour(edges: np.ndarray, sims: np.ndarray, nodes: int) -> np.ndarray:
    """(neighbour, similarity) of each node's most similar verified edge."""
    best = np.full((nodes, 2), -1.0)
    both = np.r_[edges[:, 0], edges[:, 1]]
    other = np.r_[edges[:, 1], edges[:, 0]]
    s = np.r_[sims, sims]
    order = np.lexsort((-s, both))
    first = np.r_[True, both[order][1:] != both[order][:-1]] if len(order) else np.zeros(0, bool)
    pick = order[first]
    best[both[pick], 0], best[both[pick], 1] = other[pick], s[pick]
    return best


def _node_id(plan: DedupPlan, ref: Reference | None, alive: np.ndarray, m: int, node: int) -> str:
    return ref.ids[node] if node < m else plan.ids[alive[node - m]]


def apply_plan(batches: Batches, plan: DedupPlan) -> Iterator[tuple[pa.Table, pa.Table]]:
    """Split `batches()` into (kept, removed-with-reasons) tables by the plan."""
    start = 0
    for table in batches():
        stop = start + table.num_rows
        removed = plan.reason[start:stop] != None  # noqa: E711
        kept_rows = table.filter(pa.array(~removed))
        idx = np.flatnonzero(removed)
        dropped = with_reasons(table.take(pa.array(idx)), *(list(arr[start:stop][idx]) for arr in (
            plan.reason, plan.detail, plan.duplicate_of, plan.cluster_id)),
            [None if np.isnan(v) else float(v) for v in plan.similarity[start:stop][idx]])
        yield kept_rows, dropped
        start = stop


def save_index(plan: DedupPlan, config: DedupConfig, run_path: Path) -> dict:
    """Write the kept rows' exact keys and signatures into the run, for a later `--against`."""
    from workbench.io import write_table

    kept = np.flatnonzero(plan.reason == None)  # noqa: E711
    keys = plan.stats.pop("keys", np.zeros(0, np.uint64))
    sig = plan.stats.pop("signatures", None)
    write_table(pa.table({"id": plan.ids.array.take(pa.array(kept, pa.int64())).cast(pa.string()),
                          "exact_key": pa.array(keys[kept] if len(keys) else [], pa.uint64())}),
                run_path / DEDUP_INDEX)
    spill = run_path / ".signatures.u32"
    if sig is not None:
        tmp = temp_path(run_path / SIGNATURES)
        with open(tmp, "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint32)),
                                                    "fortran_order": False, "shape": (len(kept), config.num_perm)})
            for block in sig.iter_rows(kept):
                f.write(block.tobytes())
        tmp.replace(run_path / SIGNATURES)
    spill.unlink(missing_ok=True)
    return {"num_perm": config.num_perm, "ngram": config.ngram, "seed": config.seed, "threshold": config.threshold,
            "hashing": HASHING}
