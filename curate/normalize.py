"""Text normalisation and word n-gram hashing shared by exact dedup, near dedup and decontamination.

Normalised text: NFKC, lowercase, every character that is not a letter, digit or space replaced by a
space, whitespace (line breaks included) collapsed. All of it runs vectorised in Arrow; words are
hashed with xxh3-64 once per distinct word in a batch, and n-grams combine word hashes with numpy.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

_PUNCT = r"[^\p{L}\p{N}\s]"
EMPTY_WORD = ""  # an empty document is one empty word, so empties still get a shingle and a signature


def normalize(texts: pa.Array) -> pa.Array:
    """NFKC, lowercased, punctuation to spaces, trimmed; inner whitespace is left for splitting."""
    texts = pc.utf8_normalize(texts, form="NFKC")
    return pc.utf8_trim_whitespace(pc.replace_substring_regex(pc.utf8_lower(texts), _PUNCT, " "))


def word_lists(texts: pa.Array) -> pa.Array:
    """The normalised words of each text (a list array; an empty text gives an empty list)."""
    return pc.utf8_split_whitespace(normalize(texts))


def normalized_strings(texts: pa.Array, lists: pa.Array | None = None) -> pa.Array:
    """Normalised texts with whitespace collapsed to single spaces (the key for exact dedup)."""
    lists = word_lists(texts) if lists is None else lists
    return pc.binary_join(lists, pa.scalar(" ", pa.large_string()))


def words(texts: pa.Array | None = None, lists: pa.Array | None = None) -> tuple[pa.Array, np.ndarray]:
    """(flat words, offsets) of the normalised texts; an empty text yields one empty word."""
    lists = word_lists(texts) if lists is None else lists
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
    if (lengths == 0).any():
        lists = pc.if_else(pc.equal(pc.list_value_length(lists), 0), pa.scalar([EMPTY_WORD], lists.type), lists)
        lengths = np.maximum(lengths, 1)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return pc.list_flatten(lists), offsets


def hash_words(flat_words: pa.Array) -> np.ndarray:
    """xxh3-64 of every word (uint64), computed once per distinct word."""
    encoded = pc.dictionary_encode(flat_words).combine_chunks() if isinstance(flat_words, pa.ChunkedArray) \
        else pc.dictionary_encode(flat_words)
    vocab = encoded.dictionary.cast(pa.large_binary()).to_pylist()
    table = np.fromiter((xxhash.xxh3_64_intdigest(w) for w in vocab), dtype=np.uint64, count=len(vocab))
    return table[encoded.indices.to_numpy(zero_copy_only=False)]


def _fmix64(h: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finaliser; uint64 arithmetic wraps mod 2^64 by design here."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB93FE53B6E2B)
    return h ^ (h >> np.uint64(33))


def ngram_hashes(word_hashes: np.ndarray, offsets: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """64-bit hashes of every word n-gram, the document each belongs to, and its first word's position.

    An n-gram's hash is `fmix64(h ^ n)` where `h = h*0x9E3779B97F4A7C15 + w` folds its word hashes in
    order (mod 2^64). A document shorter than `n` words gets one n-gram made of all its words, so short
    texts are compared exactly instead of being skipped. Compiled: `kernels.ngram_hashes`.
    """
    from curate import kernels

    return kernels.ngram_hashes(np.ascontiguousarray(word_hashes, dtype=np.uint64),
                                np.ascontiguousarray(offsets, dtype=np.int64), n)


def text_ngrams(texts: pa.Array | None, n: int, lists: pa.Array | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Shortcut: n-gram hashes and document indices of raw texts (or of their `word_lists`)."""
    flat, offsets = words(texts, lists)
    return ngram_hashes(hash_words(flat), offsets, n)[:2]


def exact_keys(normalized: pa.Array) -> np.ndarray:
    """xxh3-64 of each `normalized_strings` value (uint64), the key for exact dedup."""
    strings = normalized.cast(pa.large_binary()).to_pylist()
    return np.fromiter((xxhash.xxh3_64_intdigest(s) for s in strings), dtype=np.uint64, count=len(strings))
