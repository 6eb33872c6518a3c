"""MinHash hashing, signatures and band selection against independent pure-Python references."""

from __future__ import annotations

import unicodedata

import numpy as np
import pyarrow as pa
import pytest
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


_SKETCH_TEXTS = ["Hello, World!\n  It's 2024 -- costs $3.50", "ＦＵＬＬ width ½ café\u00a0x straße", "", None, "?! ...",
                 "one", "two words", "x\u0301y Ärger ĲSSEL and then a few more words here"]


@pytest.mark.parametrize("keep", [True, False])
def test_sketch_equals_tokenize_ngrams_and_signatures(keep):
    """The fused pass-1 sweep gives the same keys, empty flags, n-gram hashes and signatures as the
    separate steps, also on a sliced array (non-zero offset), mixed ASCII and non-NFKC text."""
    docs = make_docs(6, length=40)
    texts = pa.array([docs[0], *_SKETCH_TEXTS, docs[1], docs[1], *docs[2:]], pa.large_string()).slice(1)
    a, b = minhash.permutations(16, seed=2)
    sketch = minhash.sketch(texts, 5, a, b, keep_shingles=keep)
    tokens = tokenize(texts)
    shingles, doc_of = text_ngrams(None, 5, tokens)
    assert sketch.keys.tolist() == tokens.keys.tolist()
    assert sketch.empty.tolist() == tokens.empty.tolist()
    assert np.array_equal(sketch.sig, minhash.signatures(shingles, doc_of, len(texts), a, b))
    assert sketch.counts.tolist() == np.bincount(doc_of, minlength=len(texts)).tolist()
    assert sketch.shingles.tolist() == (shingles.tolist() if keep else [])
    assert np.array_equal(sketch.sig[len(_SKETCH_TEXTS)], sketch.sig[len(_SKETCH_TEXTS) + 1])  # identical docs


def _python_sets(texts: list[str | None]) -> list[set[int]]:
    shingles, doc_of = text_ngrams(pa.array(texts, pa.large_string()), 5)
    return [set(shingles[doc_of == d].tolist()) for d in range(len(texts))]


def test_jaccard_kernel_on_sorted_hash_sets_matches_python_sets():
    """sorted_sets + jaccard against Python set arithmetic: near copies, identical documents, documents
    shorter than n words (one shingle of all their words), empty text (one empty word) and empty sets."""
    from curate import kernels

    docs = make_docs(4, length=60)
    texts = [docs[0], mutate(docs[0], 3, seed=1), docs[1], docs[1], "three short words", "Three short words!",
             "three short birds", "", None, docs[0] + " " + docs[0]]
    sets = _python_sets(texts)
    shingles, doc_of = text_ngrams(pa.array(texts, pa.large_string()), 5)
    values, offsets = kernels.unique_sets(shingles, doc_of, len(texts))
    assert [values[offsets[d]:offsets[d + 1]].tolist() for d in range(len(texts))] == [sorted(s) for s in sets]
    pairs = np.array([(i, j) for i in range(len(texts)) for j in range(len(texts))])
    got = kernels.jaccard(values, offsets, pairs[:, 0], values, offsets, pairs[:, 1])
    want = [len(sets[i] & sets[j]) / len(sets[i] | sets[j]) for i, j in pairs]
    assert got.tolist() == pytest.approx(want, abs=1e-12)
    assert got[2 * len(texts) + 3] == 1.0 and got[4 * len(texts) + 5] == 1.0  # identical after normalising
    assert 0.0 < got[1] < 1.0 and got[4 * len(texts) + 6] == 0.0
    assert got[7 * len(texts) + 8] == 1.0  # "" and None: the same single empty word
    empty = kernels.sorted_sets(np.zeros(0, np.uint64), np.zeros(3, np.int64))  # two rows, no values
    assert empty[0].tolist() == [] and empty[1].tolist() == [0, 0, 0]
    assert kernels.jaccard(empty[0], empty[1], np.array([0]), values, offsets, np.array([0])).tolist() == [0.0]
    assert kernels.jaccard(empty[0], empty[1], np.array([0]), empty[0], empty[1], np.array([1])).tolist() == [0.0]


@pytest.mark.parametrize("memory", [1 << 27, 64])
def test_shingle_file_gives_each_candidate_rows_set_in_memory_or_spilled(tmp_path, memory):
    from curate.dedup import ShingleFile

    rng = np.random.default_rng(0)
    rows = [rng.integers(0, 40, size=int(rng.integers(1, 30))).astype(np.uint64) for _ in range(300)]
    spill = ShingleFile(tmp_path / "s.u64", memory=memory)
    spill.BLOCK = 16  # many reads, groups cut at block boundaries and gaps
    for lo in range(0, len(rows), 37):
        spill.append(np.concatenate(rows[lo:lo + 37]), np.array([len(r) for r in rows[lo:lo + 37]]))
    spill.close()
    assert (tmp_path / "s.u64").exists() == (memory == 64)
    wanted = np.unique(rng.integers(0, len(rows), size=80))
    sets = spill.sets(wanted)
    assert [sets.values[sets.offsets[k]:sets.offsets[k + 1]].tolist() for k in range(len(wanted))] == \
        [sorted(set(rows[r].tolist())) for r in wanted]
    assert spill.sets(np.zeros(0, np.int64)).offsets.tolist() == [0]
    spill.remove()
    assert not (tmp_path / "s.u64").exists()


def test_components_kernel_gives_scipys_labels():
    """The union-find that replaced scipy's connected_components labels components the same way (in the
    order of their smallest node), so cluster ids in removed.parquet did not change."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from curate import kernels

    rng = np.random.default_rng(3)
    for nodes, k in ((1, 0), (50, 0), (200, 120), (500, 900)):
        edges = rng.integers(0, nodes, size=(k, 2)).astype(np.int64)
        graph = coo_matrix((np.ones(k), (edges[:, 0], edges[:, 1])), shape=(nodes, nodes))
        expected = connected_components(graph, directed=False)[1]
        assert kernels.components(edges, nodes).tolist() == expected.tolist()
