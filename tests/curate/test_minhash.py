"""MinHash hashing, signatures and band selection against independent pure-Python references."""

from __future__ import annotations

import unicodedata

import numpy as np
import pyarrow as pa
from curate_corpus import jaccard, make_docs, mutate

from curate import minhash
from curate.normalize import ngram_hashes, text_ngrams, tokenize


def test_permutation_is_exact_multiply_add_shift_without_overflow_bugs():
    """Keys are the shingles' top 32 bits; each permutation is ((a*x + b) mod 2^64) >> 32, computed exactly."""
    a, b = minhash.permutations(8, seed=3)
    assert a.dtype == np.uint64 and (a & np.uint64(1)).all()
    x = np.array([0, 1, 2**63 + 5, 2**64 - 1, 123456789123456789], dtype=np.uint64)
    sig = minhash.signatures(x, np.zeros(len(x), dtype=np.int64), 1, a, b)
    expected = [min(((int(ai) * (int(xi) >> 32) + int(bi)) % 2**64) >> 32 for xi in x) for ai, bi in zip(a, b, strict=True)]
    assert sig.dtype == np.uint32
    assert sig[0].tolist() == expected


def test_signature_estimate_within_005_of_true_jaccard():
    """Unbiased at every size; each pair near the threshold (J >= 0.6) within 0.05 at 1024 perms.

    The error is binomial, sqrt(J(1-J)/num_perm): 0.035 at 128 perms for J=0.8, so dedup verifies
    candidates by exact Jaccard rather than trusting a single estimate.
    """
    docs = make_docs(40, length=150)
    pairs = [(d, mutate(d, edits, seed=i)) for i, d in enumerate(docs) for edits in (2, 6, 12)]
    texts = pa.array([t for pair in pairs for t in pair], pa.large_string())
    shingles, doc_of = text_ngrams(texts, 5)
    truth = np.array([jaccard(x, y) for x, y in pairs])
    assert truth.min() < 0.5 < 0.85 < truth.max()  # the pairs span the interesting range
    errors = {}
    for num_perm in (128, 1024):
        a, b = minhash.permutations(num_perm, seed=1)
        sig = minhash.signatures(shingles, doc_of, len(texts), a, b)
        errors[num_perm] = (sig[0::2] == sig[1::2]).mean(axis=1) - truth
        assert abs(errors[num_perm].mean()) < 0.01
    assert np.abs(errors[128]).mean() < 0.04
    assert np.abs(errors[1024][truth >= 0.6]).max() < 0.05


def test_short_documents_get_one_shingle_of_all_their_words():
    hashes = np.arange(1, 8, dtype=np.uint64)
    offsets = np.array([0, 2, 7])  # a 2-word doc and a 5-word doc with n=3
    h, doc_of, starts = ngram_hashes(hashes, offsets, 3)
    assert doc_of.tolist() == [0, 1, 1, 1]
    assert starts.tolist() == [0, 2, 3, 4]
    assert len(set(h.tolist())) == 4


def test_bands_chosen_for_recall_and_curve_reported():
    params = minhash.choose_bands(128, 0.8, recall=0.95)
    assert params.bands * params.rows <= 128
    assert params.detection(0.8) >= 0.95
    curve = minhash.detection_curve(params, 0.8)
    assert list(curve) == ["0.70", "0.80", "0.90"]
    assert curve["0.70"] < curve["0.80"] < curve["0.90"]
    # the area-balance optimum (9 x 13 at 128 perms) detects only about half the pairs at t
    assert minhash.LshParams(9, 13).detection(0.8) < 0.6


def test_candidate_pairs_from_shared_band_keys():
    keys = np.array([[1, 5], [1, 6], [2, 6], [3, 7]], dtype=np.uint64)
    assert minhash.candidate_pairs(keys).tolist() == [[0, 1], [1, 2]]


def _reference_words(text: str) -> list[str]:
    """NFKC, lowercase, split on every character outside Unicode categories L and N."""
    chars = [c if unicodedata.category(c)[0] in "LN" else " " for c in unicodedata.normalize("NFKC", text).lower()]
    return "".join(chars).split()


def test_tokenize_matches_a_pure_python_normaliser_and_keys_equal_iff_words_do():
    texts = ["Hello, World!\n  It's 2024 -- costs $3.50 (approx.)", "ＦＵＬＬ width ½ café\u00a0x\u2028y straße",
             "日本語のテキスト、句読点。", "x\u0301y Ärger ĲSSEL", "", "?! ...", "hello world its 2024"]
    tokens = tokenize(pa.array(texts + [None], pa.large_string()))
    words = [[tokens.text(i, i + 1) for i in range(tokens.offsets[d], tokens.offsets[d + 1])] for d in range(len(texts))]
    assert [[] if e else w for w, e in zip(words, tokens.empty, strict=False)] == [_reference_words(t) for t in texts]
    assert tokens.empty.tolist() == [False, False, False, False, True, True, False, True]
    same = tokenize(pa.array(["HELLO world", "hello... WORLD!", "hello worlds"], pa.large_string())).keys
    assert same[0] == same[1] != same[2]
