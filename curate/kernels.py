"""Compiled (numba) inner loops of near dedup: word n-gram hashing and MinHash signatures.

Each is one fused pass over its input with no temporary arrays, releases the GIL (dedup hashes
batches in threads) and is cached on disk after the first compilation. The numpy reference formulas
they implement are written out in `normalize.ngram_hashes` and `minhash.signatures`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_MUL = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB93FE53B6E2B)
_S33 = np.uint64(33)
_S32 = np.uint64(32)


@njit(nogil=True, cache=True)
def _fmix64(h):
    h ^= h >> _S33
    h *= _M1
    h ^= h >> _S33
    h *= _M2
    return h ^ (h >> _S33)


@njit(nogil=True, cache=True)
def ngram_hashes(word_hashes, offsets, n):
    """(hash, document, first word) of every word n-gram; a document shorter than `n` gets one of all its words."""
    docs = offsets.shape[0] - 1
    total = 0
    for d in range(docs):
        length = offsets[d + 1] - offsets[d]
        total += max(length - n + 1, 1) if length > 0 else 0
    hashes = np.empty(total, dtype=np.uint64)
    doc_of = np.empty(total, dtype=np.int64)
    starts = np.empty(total, dtype=np.int64)
    salt = np.uint64(n)
    k = 0
    for d in range(docs):
        lo, hi = offsets[d], offsets[d + 1]
        last = max(hi - n, lo) if hi > lo else lo - 1
        for s in range(lo, last + 1):
            acc = word_hashes[s]
            for j in range(s + 1, min(s + n, hi)):
                acc = acc * _MUL + word_hashes[j]
            hashes[k] = _fmix64(acc ^ salt)
            doc_of[k] = d
            starts[k] = s
            k += 1
    return hashes, doc_of, starts


@njit(nogil=True, cache=True)
def signatures(keys, bounds, a, b, out):
    """out[d, p] = min over document d's keys x of ((a[p] * x + b[p]) mod 2^64) >> 32 (keys are uint32)."""
    perms = a.shape[0]
    for d in range(bounds.shape[0] - 1):
        row = out[d]
        for p in range(perms):
            row[p] = np.uint32(0xFFFFFFFF)
        for i in range(bounds[d], bounds[d + 1]):
            x = np.uint64(keys[i])
            for p in range(perms):
                row[p] = min(row[p], np.uint32((a[p] * x + b[p]) >> _S32))
