"""Semantic dedup with a tiny local BERT-style encoder: planted copies and one-word edits are removed with
the kept row's id and cosine; the in-cluster rule, chains and keep policies on hand-made vectors; resume."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

import curate.semdedup as sd
from curate.semdedup import SemDedupConfig, kmeans, nearest_earlier, plan_semdedup
from workbench.cli import main
from workbench.errors import InputError
from workbench.workspace import bundled_data_dir


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory, tiny_tokenizer):
    from demo.tiny_models import save_tiny_encoder

    return save_tiny_encoder(tmp_path_factory.mktemp("enc") / "tiny-bert", tiny_tokenizer)


@pytest.fixture
def planted(jsonl):
    lines = (bundled_data_dir() / "gsm8k" / "train.jsonl").read_text().splitlines()[:48]
    rows = [{"id": f"q{i}", "question": json.loads(line)["question"]} for i, line in enumerate(lines)]
    copies = {f"copy{i}": f"q{i}" for i in range(0, 12, 2)}
    edited = [i for i in range(20, 48) if " the " in rows[i]["question"]][:6]
    edits = {f"edit{i}": f"q{i}" for i in edited}  # one word added: cosine > 0.9996 with the tiny encoder
    planted = [{"id": c, "question": rows[int(q[1:])]["question"]} for c, q in copies.items()]
    planted += [{"id": e, "question": rows[int(q[1:])]["question"].replace(" the ", " the very ", 1)}
                for e, q in edits.items()]
    return jsonl("questions.jsonl", rows + planted), {**copies, **edits}


def test_planted_copies_and_edits_are_removed_with_the_kept_id(planted, tiny_encoder, tmp_path):
    src, expected = planted
    out = tmp_path / "sd"
    assert main(["semdedup", str(src), "--encoder", str(tiny_encoder), "--threshold", "0.999", "--clusters", "3",
                 "--keep", "first", "--output", str(out)]) == 0
    removed = pq.read_table(out / "removed.parquet")
    got = dict(zip(removed["id"].to_pylist(), removed["duplicate_of"].to_pylist(), strict=True))
    assert got == expected
    assert set(removed["reason"].to_pylist()) == {"semantic_duplicate"}
    assert min(removed["similarity"].to_pylist()) > 0.999
    assert all(c.startswith("sem-") for c in removed["cluster_id"].to_pylist())
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["rows_in"], manifest["rows_out"]) == (60, 48)
    assert manifest["dropped"] == {"semantic_duplicate": 12} and manifest["semdedup"]["clusters"] == 3
    clusters = pq.read_table(out / "clusters.parquet")
    assert clusters.num_rows == 60 and sorted(set(clusters["cluster"].to_pylist())) == [0, 1, 2]


def test_keep_longest_keeps_the_edit_and_a_rerun_reuses_the_embeddings(planted, tiny_encoder, tmp_path,
                                                                        monkeypatch, capsys):
    src, expected = planted
    out = tmp_path / "sd"
    args = ["semdedup", str(src), "--encoder", str(tiny_encoder), "--threshold", "0.999", "--output", str(out)]
    assert main([*args, "--keep", "longest"]) == 0
    removed = pq.read_table(out / "removed.parquet")
    got = dict(zip(removed["id"].to_pylist(), removed["duplicate_of"].to_pylist(), strict=True))
    edits = {e: q for e, q in expected.items() if e.startswith("edit")}
    assert {q: e for q, e in got.items() if q in edits.values()} == {q: e for e, q in edits.items()}

    class NoEncoder:
        def __init__(self, *a, **k):
            raise AssertionError("the encoder was loaded again")

    real_encoder = sd.Encoder
    monkeypatch.setattr(sd, "Encoder", NoEncoder)
    assert main([*args, "--keep", "first", "--threshold", "0.99999"]) == 0  # embeddings come from the run
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dropped"] == {"semantic_duplicate": 6}  # only the exact copies are that close
    src.write_text(src.read_text().replace("the very", "the other"))  # changed input: embedded again
    assert main([*args, "--keep", "first"]) != 0
    assert "the encoder was loaded again" in capsys.readouterr().err
    monkeypatch.setattr(sd, "Encoder", real_encoder)
    assert main([*args, "--keep", "first"]) == 0
    assert len(list((out / "embeddings").glob("*.npy"))) == 1  # the stale chunk is gone


def test_nearest_earlier_matches_brute_force_in_blocks():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(37, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    best, which = nearest_earlier(x, max_cells=100)
    sims = x @ x.T
    assert which[0] == -1
    for j in range(1, 37):
        assert which[j] == int(np.argmax(sims[:j, j])) and best[j] == pytest.approx(sims[:j, j].max(), abs=1e-6)


def unit(degrees: list[float]) -> np.ndarray:
    r = np.radians(degrees)
    return np.stack([np.cos(r), np.sin(r)], axis=1).astype(np.float32)


def test_chains_lead_to_the_kept_row_and_keep_policies_order_the_cluster():
    x = unit([0, 10, 20, 90])  # cos 10 deg = 0.985, cos 20 deg = 0.940
    lengths = np.array([5, 9, 1, 3])
    plan = plan_semdedup(x, SemDedupConfig(threshold=0.95, clusters=1, keep="first"), lengths, None)
    assert plan.kept_as.tolist() == [-1, 0, 0, -1]  # row 2 duplicates row 1, itself a duplicate of row 0
    assert plan.nearest.tolist()[2] == 1 and plan.similarity[2] == pytest.approx(np.cos(np.radians(20)), 1e-5)
    plan = plan_semdedup(x, SemDedupConfig(threshold=0.95, clusters=1, keep="longest"), lengths, None)
    assert plan.kept_as.tolist() == [1, -1, 1, -1]
    scores = np.array([0.0, 0.0, 5.0, 0.0])
    plan = plan_semdedup(x, SemDedupConfig(threshold=0.95, clusters=1, keep="score:s"), lengths, scores)
    assert plan.kept_as.tolist() == [-1, 2, -1, -1]  # 0 deg is 20 deg from the kept row: below 0.95


def test_kmeans_is_seeded_and_separates_clear_groups():
    x = unit([0, 5, 10, 120, 125, 240, 245])
    labels, _ = kmeans(x, 3, 20, seed=1)
    assert len({labels[0], labels[1], labels[2]}) == 1 and len(set(labels.tolist())) == 3
    assert labels.tolist() == kmeans(x, 3, 20, seed=1)[0].tolist()


def test_bad_input_is_one_line(jsonl, tmp_path, capsys):
    src = str(jsonl("t.jsonl", [{"text": "a b c"}]))
    assert main(["semdedup", src, "--output", str(tmp_path / "a")]) == 2
    assert main(["semdedup", src, "--encoder", str(tmp_path / "nope"), "--output", str(tmp_path / "b")]) == 2
    assert main(["semdedup", src, "--encoder", "x", "--keep", "oldest", "--output", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "--encoder is required" in err and "cannot load it" in err and "--keep 'oldest'" in err
    assert not (tmp_path / "b").exists()
    with pytest.raises(InputError, match="no column 'q'"):
        sd.semantic_dedup(SemDedupConfig(encoder="x", keep="score:q"), [src], tmp_path / "d")
    with pytest.raises(InputError, match="--threshold"):
        sd.semantic_dedup(SemDedupConfig(encoder="x", threshold=float("nan")), [src], tmp_path / "e")
