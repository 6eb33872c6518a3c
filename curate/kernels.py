"""Compiled (numba) inner loops of exact and near dedup and decontamination.

Tokenising and word hashing, n-gram hashing, MinHash signatures (also fused into one sweep per text,
`sketch`, for dedup's first pass), LSH band keys, the exact Jaccard of verification and the connected components of verified pairs. Each is
one fused pass over its input, releases the GIL (dedup hashes batches in threads) and is cached on disk
after its first compilation (`__pycache__`, or `NUMBA_CACHE_DIR` where the package is read-only). The formulas
are stated in each docstring and in `normalize.ngram_hashes` and `minhash.signatures`; the tests
check them against pure-Python references.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_MUL = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB93FE53B6E2B)
_S33 = np.uint64(33)
_S32 = np.uint64(32)
_FNV_BASIS = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@njit(nogil=True, cache=True)
def _fmix64(h):
    h ^= h >> _S33
    h *= _M1
    h ^= h >> _S33
    h *= _M2
    return h ^ (h >> _S33)


@njit(nogil=True, cache=True)
def _doc_grams(words, lo, hi, n, out, k):
    """Hashes of the word n-grams of words[lo:hi] into out[k:] (one of all the words when fewer than n);
    returns the new k."""
    salt = np.uint64(n)
    last = max(hi - n, lo) if hi > lo else lo - 1
    for s in range(lo, last + 1):
        acc = words[s]
        for j in range(s + 1, min(s + n, hi)):
            acc = acc * _MUL + words[j]
        out[k] = _fmix64(acc ^ salt)
        k += 1
    return k


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
    k = 0
    for d in range(docs):
        lo, hi = offsets[d], offsets[d + 1]
        end = _doc_grams(word_hashes, lo, hi, n, hashes, k)
        for i in range(k, end):
            doc_of[i] = d
            starts[i] = lo + i - k
        k = end
    return hashes, doc_of, starts


@njit(nogil=True, cache=True)
def _doc_signature(shingles, lo, hi, a, b, acc):
    """acc[p] = min over shingles[lo:hi] of ((a[p] * x + b[p]) mod 2^64) >> 32, x the shingle's top 32 bits."""
    for p in range(a.shape[0]):
        acc[p] = np.uint32(0xFFFFFFFF)
    i = lo
    while i + 4 <= hi:  # the hot loop, vectorised over p: four shingles per load and store of acc
        x0, x1 = shingles[i] >> _S32, shingles[i + 1] >> _S32
        x2, x3 = shingles[i + 2] >> _S32, shingles[i + 3] >> _S32
        for p in range(a.shape[0]):
            ap, bp = a[p], b[p]
            m = min(min(np.uint32((ap * x0 + bp) >> _S32), np.uint32((ap * x1 + bp) >> _S32)),
                    min(np.uint32((ap * x2 + bp) >> _S32), np.uint32((ap * x3 + bp) >> _S32)))
            acc[p] = min(acc[p], m)
        i += 4
    for j in range(i, hi):
        x = shingles[j] >> _S32
        for p in range(a.shape[0]):
            acc[p] = min(acc[p], np.uint32((a[p] * x + b[p]) >> _S32))


@njit(nogil=True, cache=True)
def signatures(shingles, bounds, a, b, out):
    """out[d] = the MinHash signature of shingles[bounds[d]:bounds[d + 1]] (`_doc_signature`)."""
    acc = np.empty(a.shape[0], dtype=np.uint32)
    for d in range(bounds.shape[0] - 1):
        _doc_signature(shingles, bounds[d], bounds[d + 1], a, b, acc)
        out[d, :] = acc


@njit(nogil=True, cache=True)
def _code_point(data, i):
    """The code point of the UTF-8 character whose lead byte (>= 0xC0) is data[i]."""
    c = np.int64(data[i])
    if c < 0xE0:
        return ((c & 0x1F) << 6) | (np.int64(data[i + 1]) & 0x3F)
    if c < 0xF0:
        return ((c & 0x0F) << 12) | ((np.int64(data[i + 1]) & 0x3F) << 6) | (np.int64(data[i + 2]) & 0x3F)
    return (((c & 0x07) << 18) | ((np.int64(data[i + 1]) & 0x3F) << 12) | ((np.int64(data[i + 2]) & 0x3F) << 6)
            | (np.int64(data[i + 3]) & 0x3F))


@njit(nogil=True, cache=True)
def unknown_code_points(data, lo, hi, word_char):
    """Distinct non-ASCII code points in data[lo:hi] whose `word_char` entry is still 2 (unknown)."""
    found = []
    for i in range(lo, hi):
        if data[i] >= 0xC0:
            cp = _code_point(data, i)
            if word_char[cp] == 2:
                found.append(cp)
                word_char[cp] = 3  # reported once; the caller sets 0 or 1
    out = np.empty(len(found), dtype=np.int64)
    for k in range(len(found)):
        out[k] = found[k]
    return out


@njit(nogil=True, cache=True)
def _doc_words(data, lo, hi, table, word_char, hashes, spans, k):
    """Hashes of the words of data[lo:hi] into hashes[k:] (and their byte spans into spans[k:] unless
    `spans` has no rows); returns the new k. See `tokenize` for what a word and its hash are."""
    keep_spans = spans.shape[0] > 0
    h = _FNV_BASIS
    start, inside = lo, False
    for i in range(lo, hi):
        c = data[i]
        m = np.uint64(table[c])
        if c < 0x80:
            word = m != 0
        else:  # a multi-byte character: its lead byte decides, continuation bytes go with it
            m = np.uint64(c)
            word = inside if c < 0xC0 else word_char[_code_point(data, i)] == 1
        if word:
            if not inside:
                start, h = i, _FNV_BASIS
            h = (h ^ m) * _FNV_PRIME
        elif inside:
            hashes[k] = _fmix64(h ^ np.uint64(i - start))
            if keep_spans:
                spans[k, 0], spans[k, 1] = start, i
            k += 1
        inside = word
    if inside:  # a word running to the end of the text
        hashes[k] = _fmix64(h ^ np.uint64(hi - start))
        if keep_spans:
            spans[k, 0], spans[k, 1] = start, hi
        k += 1
    return k


@njit(nogil=True, cache=True)
def _exact_key(hashes, lo, hi):
    """A text's exact key: its word hashes folded in order (0 for a text without words)."""
    if hi == lo:
        return np.uint64(0)
    key = np.uint64(0)
    for i in range(lo, hi):
        key = key * _MUL + hashes[i]
    return _fmix64(key ^ np.uint64(hi - lo))


@njit(nogil=True, cache=True)
def tokenize(data, offsets, table, word_char):
    """Words of each text in a UTF-8 buffer: maximal runs of word characters.

    An ASCII byte is a word byte when `table` maps it to non-zero (its lowercase form, which is hashed);
    a multi-byte character is a word character when `word_char` of its code point is 1; continuation
    bytes (0x80-0xBF) go with the character before them.

    Returns (word hashes, word offsets per text, word byte spans in `data`, exact key per text). A word's
    hash is fmix64 of the FNV-1a hash of its (mapped) bytes, xor its byte length; a text without words
    gets one empty word. The exact key folds a text's word hashes in order, so it is equal iff the word
    sequences are (up to 64-bit collisions).
    """
    docs = offsets.shape[0] - 1
    counts = np.zeros(docs + 1, dtype=np.int64)
    for d in range(docs):  # branch-light: the byte class is arithmetic except for non-ASCII bytes
        words, inside = 0, 0
        for i in range(offsets[d], offsets[d + 1]):
            c = data[i]
            word = np.int64(table[c] != 0)
            if c >= 0x80:
                word = inside if c < 0xC0 else np.int64(word_char[_code_point(data, i)] == 1)
            words += word & (1 - inside)
            inside = word
        counts[d + 1] = max(words, 1)
    word_offsets = np.cumsum(counts)
    hashes = np.empty(word_offsets[-1], dtype=np.uint64)
    spans = np.empty((word_offsets[-1], 2), dtype=np.int64)
    keys = np.empty(docs, dtype=np.uint64)
    for d in range(docs):
        k = word_offsets[d]
        end = _doc_words(data, offsets[d], offsets[d + 1], table, word_char, hashes, spans, k)
        keys[d] = _exact_key(hashes, k, end)
        if end == k:  # no words: one empty word
            hashes[k] = _fmix64(_FNV_BASIS)
            spans[k, 0], spans[k, 1] = offsets[d], offsets[d]
    return hashes, word_offsets, spans, keys


@njit(nogil=True, cache=True)
def sketch(data, offsets, table, word_char, n, a, b, sig, keys, empty, shingles, counts):
    """Pass 1 of near dedup in one sweep per text, with no per-word arrays for the whole batch: its words
    (as `tokenize`), exact key and empty flag, word n-gram hashes (as `ngram_hashes`) and MinHash
    signature (as `signatures` on the n-grams' top 32 bits) into sig[d]. When `shingles` has room, each
    text's n-gram hashes go there back to back (counts[d] of them); returns how many were written."""
    docs = offsets.shape[0] - 1
    longest = 0
    for d in range(docs):
        longest = max(longest, offsets[d + 1] - offsets[d])
    words = np.empty(longest // 2 + 2, dtype=np.uint64)  # a word takes a byte and a break takes one
    grams = np.empty(longest // 2 + 2, dtype=np.uint64)
    no_spans = np.empty((0, 2), dtype=np.int64)
    keep = shingles.shape[0] > 0
    acc = np.empty(a.shape[0], dtype=np.uint32)
    written = 0
    for d in range(docs):
        w = _doc_words(data, offsets[d], offsets[d + 1], table, word_char, words, no_spans, 0)
        keys[d] = _exact_key(words, 0, w)
        empty[d] = w == 0
        if w == 0:  # no words: one empty word
            words[0] = _fmix64(_FNV_BASIS)
            w = 1
        g = _doc_grams(words, 0, w, n, grams, 0)
        _doc_signature(grams, 0, g, a, b, acc)
        sig[d, :] = acc
        counts[d] = g
        if keep:
            shingles[written:written + g] = grams[:g]
            written += g
    return written


@njit(nogil=True, cache=True)
def splice(data, offsets, rows, new_data, new_offsets):
    """Texts (data, offsets) with text rows[k] (sorted) replaced by text k of (new_data, new_offsets):
    the new (data, offsets), rebased to start at 0."""
    docs = offsets.shape[0] - 1
    out_offsets = np.empty(docs + 1, dtype=np.int64)
    out_offsets[0] = 0
    k = 0
    for d in range(docs):
        if k < rows.shape[0] and rows[k] == d:
            length = new_offsets[k + 1] - new_offsets[k]
            k += 1
        else:
            length = offsets[d + 1] - offsets[d]
        out_offsets[d + 1] = out_offsets[d] + length
    out = np.empty(out_offsets[docs], dtype=np.uint8)
    k = 0
    for d in range(docs):
        if k < rows.shape[0] and rows[k] == d:
            out[out_offsets[d]:out_offsets[d + 1]] = new_data[new_offsets[k]:new_offsets[k + 1]]
            k += 1
        else:
            out[out_offsets[d]:out_offsets[d + 1]] = data[offsets[d]:offsets[d + 1]]
    return out, out_offsets


@njit(nogil=True, cache=True)
def band_keys(sig, bands, rows):
    """uint64 key per (document, band): fmix64 folds of the band's signature values (FNV-style)."""
    n = sig.shape[0]
    out = np.empty((n, bands), dtype=np.uint64)
    for d in range(n):
        for band in range(bands):
            acc = np.uint64(0)
            for r in range(band * rows, (band + 1) * rows):
                acc = _fmix64(acc * _FNV_PRIME + np.uint64(sig[d, r]))
            out[d, band] = acc
    return out


@njit(nogil=True, cache=True)
def sorted_sets(values, bounds):
    """Sorted distinct values[bounds[d]:bounds[d + 1]] of each document d, back to back, and their offsets."""
    docs = bounds.shape[0] - 1
    out = np.empty_like(values)
    offsets = np.zeros(docs + 1, dtype=np.int64)
    k = 0
    for d in range(docs):
        part = np.sort(values[bounds[d]:bounds[d + 1]])
        for i in range(part.shape[0]):
            if i == 0 or part[i] != part[i - 1]:
                out[k] = part[i]
                k += 1
        offsets[d + 1] = k
    return out[:k].copy(), offsets


def unique_sets(values, doc_of, docs):
    """Sorted distinct `values` of each document (`doc_of` sorted), back to back, and their offsets."""
    return sorted_sets(values, np.searchsorted(doc_of, np.arange(docs + 1)))


@njit(nogil=True, cache=True)
def jaccard(values_a, offsets_a, index_a, values_b, offsets_b, index_b):
    """Exact Jaccard of set index_a[p] (of a) and set index_b[p] (of b) for every p, by a sorted merge."""
    out = np.empty(index_a.shape[0])
    for p in range(index_a.shape[0]):
        i, i_end = offsets_a[index_a[p]], offsets_a[index_a[p] + 1]
        j, j_end = offsets_b[index_b[p]], offsets_b[index_b[p] + 1]
        union = (i_end - i) + (j_end - j)
        inter = 0
        while i < i_end and j < j_end:
            if values_a[i] == values_b[j]:
                inter += 1
                i += 1
                j += 1
            elif values_a[i] < values_b[j]:
                i += 1
            else:
                j += 1
        out[p] = inter / max(union - inter, 1)
    return out


@njit(nogil=True, cache=True)
def _root(parent, v):
    while parent[v] != v:  # path halving
        parent[v] = parent[parent[v]]
        v = parent[v]
    return v


@njit(nogil=True, cache=True)
def components(edges, nodes):
    """Component label of each of `nodes` nodes of the undirected graph with (k, 2) `edges`, numbered in the
    order of each component's smallest node: the labels scipy's `connected_components` gives. Union-find
    whose root is always the smallest node, so a node's root is labelled before the node is reached."""
    parent = np.arange(nodes)
    for e in range(edges.shape[0]):
        a, b = _root(parent, edges[e, 0]), _root(parent, edges[e, 1])
        if a < b:
            parent[b] = a
        elif b < a:
            parent[a] = b
    labels = np.empty(nodes, dtype=np.int64)
    count = 0
    for v in range(nodes):
        r = _root(parent, v)
        if r == v:
            labels[v] = count
            count += 1
        else:
            labels[v] = labels[r]
    return labels
