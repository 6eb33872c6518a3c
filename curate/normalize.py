"""Text normalisation and word n-gram hashing shared by exact dedup, near dedup and decontamination.

Normalised text: NFKC, lowercase, every character that is not a letter or digit is a word break
(punctuation, whitespace and line breaks alike). ASCII texts (NFKC leaves them unchanged) are
normalised and split in one compiled pass over the Arrow string buffer (`kernels.tokenize`); only
non-ASCII texts go through Arrow's NFKC, Unicode lowercasing and a `[^\\p{L}\\p{N}]+` regex first.
Words are hashed to 64 bits in the same pass, and n-grams combine word hashes (`ngram_hashes`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_BREAKS = r"[^\p{L}\p{N}]+"


def _byte_table() -> np.ndarray:
    """Byte -> normalised byte: ASCII letters lowercased, digits kept, other ASCII 0 (a break); bytes of
    multi-byte UTF-8 characters are kept (their texts were normalised by Arrow already)."""
    table = np.zeros(256, dtype=np.uint8)
    table[0x80:] = np.arange(0x80, 0x100)
    for c in b"abcdefghijklmnopqrstuvwxyz0123456789":
        table[c] = c
    for c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        table[c] = c + 32
    return table


_TABLE = _byte_table()


@dataclass
class Tokens:
    """The normalised words of a batch of texts; a text without words holds one empty word."""

    hashes: np.ndarray  # uint64 per word
    offsets: np.ndarray  # int64 (texts + 1): text i's words are hashes[offsets[i]:offsets[i + 1]]
    spans: np.ndarray  # int64 (words, 2): each word's bytes in `data`
    keys: np.ndarray  # uint64 per text: equal iff the normalised word sequences are (exact dedup key)
    data: np.ndarray  # uint8 UTF-8 bytes the spans point into (ASCII not yet lowercased)

    @property
    def empty(self) -> np.ndarray:
        """True for texts with no words left after normalisation."""
        first = self.spans[self.offsets[:-1]]
        return first[:, 1] == first[:, 0]

    def text(self, first: int, stop: int) -> str:
        """Words `first`..`stop - 1` as normalised text joined by spaces (for messages)."""
        return " ".join(self.data[s:e].tobytes().decode("utf-8", "replace").lower() for s, e in self.spans[first:stop])


def tokenize(texts: pa.Array | pa.ChunkedArray) -> Tokens:
    """Normalise and split `texts` (strings; nulls read as empty) and hash their words."""
    from curate import kernels

    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    texts = pc.fill_null(texts.cast(pa.large_string()), "")
    ascii_rows = pc.string_is_ascii(texts)
    if not pc.all(ascii_rows).as_py():
        other = pc.invert(ascii_rows)
        unicode_text = pc.utf8_lower(pc.utf8_normalize(texts.filter(other), form="NFKC"))
        texts = pc.replace_with_mask(texts, other, pc.replace_substring_regex(unicode_text, _BREAKS, " "))
    _, offset_buf, data_buf = texts.buffers()
    offsets = np.frombuffer(offset_buf, dtype=np.int64, count=texts.offset + len(texts) + 1)[texts.offset:]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    hashes, word_offsets, spans, keys = kernels.tokenize(data, offsets, _TABLE)
    return Tokens(hashes, word_offsets, spans, keys, data)


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


def text_ngrams(texts: pa.Array | None, n: int, tokens: Tokens | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Shortcut: n-gram hashes and document indices of raw texts (or of their `tokenize` result)."""
    tokens = tokenize(texts) if tokens is None else tokens
    return ngram_hashes(tokens.hashes, tokens.offsets, n)[:2]
