"""MinHash signatures and LSH banding, vectorised with numpy over batches of documents.

Shingles are 64-bit n-gram hashes (see `normalize.ngram_hashes`); MinHash reads their top 32 bits as
the key x. Each of `num_perm` permutations is the multiply-add-shift hash `((a*x + b) mod 2^64) >> 32`
with 64-bit `a` (odd) and `b`, which is 2-independent for 32-bit keys (Dietzfelbinger 1996): wrapping
mod 2^64 is the scheme itself (no modulo-prime step that uint64 overflow silently breaks), and the
result is the uint32 signature value. The loop is compiled (`kernels.signatures`); dedup's pass 1
runs `sketch`, which tokenises, shingles and MinHashes each text in one compiled sweep with the same
results. Bands x rows are chosen so the detection probability at the threshold reaches a stated
recall, not by the area balance that gives ~50% detection at the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class LshParams:
    bands: int
    rows: int

    def detection(self, s: float) -> float:
        """Probability that a pair of Jaccard `s` shares at least one band."""
        return 1.0 - (1.0 - s**self.rows) ** self.bands


def choose_bands(num_perm: int, threshold: float, recall: float = 0.95) -> LshParams:
    """The most selective bands x rows (largest rows) whose detection at `threshold` is >= `recall`."""
    for rows in range(num_perm, 0, -1):
        params = LshParams(num_perm // rows, rows)
        if params.detection(threshold) >= recall:
            return params
    return LshParams(num_perm, 1)


def detection_curve(params: LshParams, threshold: float) -> dict[str, float]:
    """Detection probability at t-0.1, t, t+0.1 (keys are the similarities, formatted)."""
    points = [round(threshold + d, 2) for d in (-0.1, 0.0, 0.1)]
    return {f"{s:.2f}": round(params.detection(s), 4) for s in points if 0.0 < s <= 1.0}


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of the multiply-shift permutations; `a` is odd."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False) | np.uint64(1)
    b = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False)
    return a, b


def signatures(shingles: np.ndarray, doc_of: np.ndarray, num_docs: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """uint32 signatures (num_docs x num_perm); `doc_of` must be sorted (a document without shingles gets
    the all-0xFFFFFFFF signature)."""
    from curate import kernels

    bounds = np.searchsorted(doc_of, np.arange(num_docs + 1))
    out = np.empty((num_docs, len(a)), dtype=np.uint32)
    kernels.signatures(np.ascontiguousarray(shingles, dtype=np.uint64), bounds, a, b, out)
    return out


@dataclass
class Sketch:
    """Dedup's pass 1 over a batch of texts (`sketch`)."""

    keys: np.ndarray  # uint64 exact key per text (`normalize.Tokens.keys`)
    empty: np.ndarray  # bool per text: no words left after normalisation
    sig: np.ndarray  # uint32 (texts, num_perm) MinHash signatures
    shingles: np.ndarray  # uint64 n-gram hashes of every text back to back (none unless asked for)
    counts: np.ndarray  # int64 n-grams per text


def sketch(texts: pa.Array | pa.ChunkedArray, n: int, a: np.ndarray, b: np.ndarray,
           keep_shingles: bool = False) -> Sketch:
    """Exact keys, empty flags and signatures of `texts` in one compiled sweep per text (`kernels.sketch`):
    the same values as `tokenize`, `normalize.ngram_hashes` and `signatures` give, without the batch's
    per-word arrays. With `keep_shingles` the n-gram hashes come back too, for exact verification."""
    from curate import kernels
    from curate.normalize import byte_tables, utf8_buffer

    data, offsets = utf8_buffer(texts)
    docs = len(offsets) - 1
    out = Sketch(np.empty(docs, np.uint64), np.empty(docs, np.bool_), np.empty((docs, len(a)), np.uint32),
                 np.empty(int(offsets[-1] - offsets[0]) // 2 + docs + 1 if keep_shingles else 0, np.uint64),
                 np.empty(docs, np.int64))
    written = kernels.sketch(data, offsets, *byte_tables(), n, a, b, out.sig, out.keys, out.empty, out.shingles,
                             out.counts)
    out.shingles = out.shingles[:written]
    return out


def band_keys(sig: np.ndarray, params: LshParams) -> np.ndarray:
    """uint64 key per (document, band): a hash of the band's `rows` signature values (`kernels.band_keys`)."""
    from curate import kernels

    return kernels.band_keys(np.ascontiguousarray(sig), params.bands, params.rows)


def candidate_pairs(keys: np.ndarray, max_bucket: int = 64) -> np.ndarray:
    """Unique (i, j) pairs, i < j, of documents that share a band key (int64, shape (k, 2)).

    A bucket of up to `max_bucket` documents yields all its pairs; a larger bucket (a very common
    band, e.g. boilerplate) yields a chain through its sorted members plus a star from its first,
    which keeps it connected without a quadratic blow-up; verification then decides each edge.
    """
    rows = np.arange(keys.shape[0], dtype=np.int64)
    return unique_pairs([bucket_pairs(keys[:, band], rows, max_bucket) for band in range(keys.shape[1])])


def bucket_pairs(keys: np.ndarray, rows: np.ndarray, max_bucket: int = 64) -> np.ndarray:
    """The pairs (of `rows`) that one band's keys put in the same bucket, as `candidate_pairs` describes.
    A bucket's pairs depend only on its members, so any split of the buckets (the Ray engine's hash
    partitions) yields the same pairs."""
    out = [np.zeros((0, 2), dtype=np.int64)]
    order = np.argsort(keys)  # bucket order does not matter: pairs are sorted and deduplicated later
    sorted_keys = keys[order]
    boundary = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1], True])
    sizes = np.diff(boundary)
    for size in range(2, min(int(sizes.max(initial=0)), max_bucket) + 1):
        starts = boundary[:-1][sizes == size]
        if len(starts) == 0:
            continue
        members = rows[order[starts[:, None] + np.arange(size)[None, :]]]
        ii, jj = np.triu_indices(size, k=1)
        out.append(np.stack([members[:, ii].ravel(), members[:, jj].ravel()], axis=1))
    for start, size in zip(boundary[:-1][sizes > max_bucket], sizes[sizes > max_bucket], strict=True):
        members = np.sort(rows[order[start:start + size]])
        out.append(np.stack([members[:-1], members[1:]], axis=1))
        out.append(np.stack([np.full(size - 1, members[0]), members[1:]], axis=1))
    return np.concatenate(out).astype(np.int64)


def unique_pairs(parts: list[np.ndarray]) -> np.ndarray:
    """Pairs from `bucket_pairs` as unique (i, j) rows with i < j, sorted."""
    pairs = np.concatenate(parts).astype(np.int64) if parts else np.zeros((0, 2), dtype=np.int64)
    if not len(pairs):
        return np.zeros((0, 2), dtype=np.int64)
    pairs.sort(axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    n = int(pairs.max()) + 1 if len(pairs) else 1
    codes = np.unique(pairs[:, 0] * n + pairs[:, 1])
    return np.stack([codes // n, codes % n], axis=1)


def estimate_jaccard(sig: np.ndarray, pairs: np.ndarray, other: np.ndarray | None = None) -> np.ndarray:
    """Fraction of equal signature slots for each pair (rows of `sig`, or `sig` x `other`)."""
    right = sig if other is None else other
    return (sig[pairs[:, 0]] == right[pairs[:, 1]]).mean(axis=1)
