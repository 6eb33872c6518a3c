"""Text normalisation and word n-gram hashing shared by exact dedup, near dedup and decontamination.

Normalised text: NFKC, lowercase, every character that is not a letter or digit (Unicode categories
L and N) is a word break (punctuation, whitespace and line breaks alike). Texts are split, ASCII
lowercased and words hashed to 64 bits in one compiled pass over the Arrow string buffer
(`kernels.tokenize`); only non-ASCII texts go through Arrow's Unicode lowercasing first, and NFKC
only those that are not already in NFKC. n-grams combine word hashes (`ngram_hashes`).
"""

from __future__ import annotations

import threading
import unicodedata
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _byte_table() -> np.ndarray:
    """ASCII byte -> normalised byte: letters lowercased, digits kept, everything else 0 (a break)."""
    table = np.zeros(256, dtype=np.uint8)
    for c in b"abcdefghijklmnopqrstuvwxyz0123456789":
        table[c] = c
    for c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        table[c] = c + 32
    return table


_TABLE = _byte_table()
# per code point: 1 letter or digit, 0 a break, 2 not classified yet (filled from `unicodedata` on first sight)
_WORD_CHAR = np.full(0x110000, 2, dtype=np.uint8)
_WORD_CHAR_LOCK = threading.Lock()


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

    data, offsets = utf8_buffer(texts)
    hashes, word_offsets, spans, keys = kernels.tokenize(data, offsets, _TABLE, _WORD_CHAR)
    return Tokens(hashes, word_offsets, spans, keys, data)


def utf8_buffer(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(UTF-8 bytes, int64 offsets per text) of `texts` ready for the compiled tokenizer: non-ASCII texts
    NFKC-normalised and lowercased, their code points classified. Pass both with `byte_tables()`."""
    from curate import kernels

    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    texts = pc.fill_null(texts.cast(pa.large_string()), "")
    data, offsets = _buffers(texts)
    ascii_rows = pc.string_is_ascii(texts)
    if pc.all(ascii_rows).as_py():
        return data, offsets
    other = pc.invert(ascii_rows)
    unicode_text = texts.filter(other)
    strings = unicode_text.to_pylist()
    # most texts are NFKC already: only the others make the round trip through Python strings
    odd = np.array([not unicodedata.is_normalized("NFKC", t) for t in strings], dtype=bool)
    if odd.any():
        unicode_text = pc.replace_with_mask(unicode_text, pa.array(odd), pa.array(
            [unicodedata.normalize("NFKC", t) for t, o in zip(strings, odd, strict=True) if o], pa.large_string()))
    new_data, new_offsets = _buffers(pc.utf8_lower(unicode_text))
    _classify_code_points(new_data, new_offsets)
    rows = np.flatnonzero(other.to_numpy(zero_copy_only=False))
    return kernels.splice(data, offsets, rows, new_data, new_offsets)


def _buffers(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes and int64 offsets of a large_string array (zero-copy)."""
    _, offset_buf, data_buf = texts.buffers()
    offsets = np.frombuffer(offset_buf, dtype=np.int64, count=texts.offset + len(texts) + 1)[texts.offset:]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    return data, offsets


def byte_tables() -> tuple[np.ndarray, np.ndarray]:
    """The compiled tokenizer's (ASCII byte table, per-code-point word table)."""
    return _TABLE, _WORD_CHAR


def _classify_code_points(data: np.ndarray, offsets: np.ndarray) -> None:
    """Fill `_WORD_CHAR` for the code points of `data` not seen before (letters and digits are 1)."""
    from curate import kernels

    with _WORD_CHAR_LOCK:
        for cp in kernels.unknown_code_points(data, offsets[0], offsets[-1], _WORD_CHAR):
            _WORD_CHAR[cp] = unicodedata.category(chr(cp))[0] in "LN"


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
