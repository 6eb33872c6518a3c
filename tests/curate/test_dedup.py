"""`wb dedup` end to end: planted near duplicates, near misses, exact duplicates, keep policies,
short documents, conversations, `--against`, oversized clusters and bad input."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from curate_corpus import jaccard, make_docs, mutate

from workbench.cli import main


def dedup(args: list[str], out) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    assert main(["dedup", *map(str, args), "--output", str(out)]) == 0
    return (pl.read_parquet(out / "data.parquet"), pl.read_parquet(out / "removed.parquet"),
            json.loads((out / "manifest.json").read_text()))


def test_planted_near_duplicates_found_and_near_misses_kept(tmp_path, jsonl, capsys):
    docs = make_docs(120)
    rows = [{"id": f"d{i}", "text": t} for i, t in enumerate(docs)]
    near = {f"near{i}": mutate(docs[i], 2, seed=i) for i in range(30)}      # J about 0.85-0.9
    misses = {f"miss{i}": mutate(docs[i], 10, seed=i) for i in range(30, 60)}  # J about 0.5-0.6
    rows += [{"id": k, "text": v} for k, v in {**near, **misses}.items()]
    kept, removed, manifest = dedup([jsonl("c.jsonl", rows)], tmp_path / "run")
    truth = {k: jaccard(v, docs[int(k[4:])]) for k, v in near.items()}
    assert min(truth.values()) >= 0.8 and max(jaccard(v, docs[int(k[4:])]) for k, v in misses.items()) < 0.75
    assert sorted(removed["id"]) == sorted(near)
    assert set(removed["reason"]) == {"near_duplicate"}
    for row in removed.iter_rows(named=True):
        assert row["duplicate_of"] == "d" + row["id"][4:]
        assert row["similarity"] == pytest.approx(truth[row["id"]], abs=1e-4)
        assert row["cluster_id"].startswith("near-") and row["duplicate_of"] in row["detail"]
    assert kept.height == 150 and set(misses) <= set(kept["id"])
    assert manifest["dropped"] == {"near_duplicate": 30}
    assert manifest["dedup"]["lsh"]["detection"]["0.80"] >= 0.95
    assert "P(candidate | J=0.80)" in capsys.readouterr().out


def test_exact_duplicates_after_normalisation(tmp_path, jsonl):
    rows = [{"text": "Hello,   World!\nHow are you?"}, {"text": "hello world how are you"},
            {"text": "hello world how are they"}, {"text": None}, {"text": "  ?! "}]
    kept, removed, manifest = dedup([jsonl("x.jsonl", rows)], tmp_path / "run")
    assert kept["id"].to_list() == ["x-0", "x-2"]  # ids made from the file stem and row index
    assert kept["source"].to_list() == ["x", "x"]
    by_id = {r["id"]: r for r in removed.iter_rows(named=True)}
    assert by_id["x-1"]["reason"] == "exact_duplicate" and by_id["x-1"]["duplicate_of"] == "x-0"
    assert by_id["x-1"]["similarity"] == 1.0
    assert by_id["x-3"]["reason"] == by_id["x-4"]["reason"] == "empty_text"
    assert manifest["dropped"] == {"exact_duplicate": 1, "empty_text": 2}


def test_short_documents_are_compared_not_skipped(tmp_path, jsonl):
    rows = [{"text": "two words"}, {"text": "Two words."}, {"text": "two birds"}, {"text": "one"}]
    kept, removed, _ = dedup([jsonl("s.jsonl", rows), "--no-exact"], tmp_path / "run")
    assert removed["id"].to_list() == ["s-1"] and removed["reason"].to_list() == ["near_duplicate"]
    assert removed["duplicate_of"].to_list() == ["s-0"]


@pytest.mark.parametrize("keep,winner", [("first", "a"), ("longest", "c"), ("score:quality", "b"),
                                         ("source-priority", "c")])
def test_keep_policies(tmp_path, jsonl, keep, winner):
    base = make_docs(1)[0]
    group = {"a": base, "b": mutate(base, 1, seed=1), "c": base + " and one more line"}
    first = jsonl("first.jsonl", [{"id": "a", "text": group["a"], "quality": 0.1},
                                  {"id": "b", "text": group["b"], "quality": 0.9}])
    second = jsonl("second.jsonl", [{"id": "c", "text": group["c"], "quality": 0.5}])
    extra = ["--source-priority", "second", "first"] if keep == "source-priority" else []
    kept, removed, _ = dedup([first, second, "--keep", keep, *extra], tmp_path / "run")
    assert kept["id"].to_list() == [winner]
    assert set(removed["duplicate_of"]) == {winner}


def test_dedup_on_the_prompt_of_conversations(tmp_path, jsonl):
    def convo(user: str, reply: str) -> dict:
        return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]}
    question = make_docs(1)[0]
    rows = [convo(question, "first answer"), convo(question, "a completely different answer"),
            convo("another question entirely", "first answer")]
    path = jsonl("chat.jsonl", rows)
    _, removed, _ = dedup([path, "--field", "messages.prompt"], tmp_path / "prompt")
    assert removed["id"].to_list() == ["chat-1"]
    _, removed, _ = dedup([path, "--field", "messages.response"], tmp_path / "response")
    assert removed["id"].to_list() == ["chat-2"]
    _, removed, _ = dedup([path], tmp_path / "whole")  # a long shared prompt makes the whole rows near twins
    assert removed["id"].to_list() == ["chat-1"] and removed["reason"].to_list() == ["near_duplicate"]


def test_against_an_earlier_run(tmp_path, jsonl, capsys):
    docs = make_docs(40)
    first = jsonl("old.jsonl", [{"id": f"old{i}", "text": t} for i, t in enumerate(docs[:20])])
    dedup([first], tmp_path / "r1")
    assert (tmp_path / "r1" / "signatures.npy").exists()
    new_rows = [{"id": "copy", "text": docs[3]}, {"id": "near", "text": mutate(docs[5], 2, seed=5)},
                {"id": "fresh", "text": docs[30]}]
    kept, removed, _ = dedup([jsonl("new.jsonl", new_rows), "--against", tmp_path / "r1"], tmp_path / "r2")
    assert kept["id"].to_list() == ["fresh"]
    by_id = {r["id"]: r for r in removed.iter_rows(named=True)}
    assert by_id["copy"]["reason"] == "exact_duplicate" and by_id["copy"]["duplicate_of"] == "old3"
    assert by_id["near"]["reason"] == "near_duplicate" and by_id["near"]["duplicate_of"] == "old5"
    assert by_id["near"]["similarity"] > 0.7
    assert main(["dedup", str(tmp_path / "new.jsonl"), "--against", str(tmp_path / "r1"), "--num-perm", "64",
                 "--output", str(tmp_path / "r3")]) == 2
    manifest_path = tmp_path / "r1" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["minhash"].pop("hashing")  # a run made before the current hashing scheme
    manifest_path.write_text(json.dumps(manifest))
    assert main(["dedup", str(tmp_path / "new.jsonl"), "--against", str(tmp_path / "r1"),
                 "--output", str(tmp_path / "r4")]) == 2
    assert "hashed by an older version" in capsys.readouterr().err


def test_chains_are_verified_and_oversized_clusters_flagged(tmp_path, jsonl):
    base = make_docs(1, length=200)[0].split()
    chain = [" ".join(base[8 * k: 8 * k + 100]) for k in range(4)]  # neighbours J~0.85, ends J~0.6
    assert jaccard(chain[0], chain[1]) > 0.8 > 0.75 > jaccard(chain[0], chain[2])
    path = jsonl("chain.jsonl", [{"id": f"c{k}", "text": t} for k, t in enumerate(chain)])
    kept, removed, manifest = dedup([path], tmp_path / "all")
    assert kept["id"].to_list() == ["c0"]  # a verified chain is one cluster...
    far = removed.filter(pl.col("id") == "c3").row(0, named=True)
    assert far["duplicate_of"] == "c0" and "via c2" in far["detail"]  # ...and the detail says how
    kept, removed, manifest = dedup([path, "--max-cluster-size", "2"], tmp_path / "capped")
    assert removed["id"].to_list() == ["c1"]  # only rows verified directly against the kept row go
    assert manifest["dedup"]["oversized_clusters"] == 1


def test_bad_input_is_one_clear_error(tmp_path, jsonl, capsys):
    path = jsonl("bad.jsonl", [{"text": "fine", "n": 3}])
    assert main(["dedup", str(path), "--field", "body", "--output", str(tmp_path / "a")]) == 2
    assert "no field 'body'" in capsys.readouterr().err
    assert main(["dedup", str(path), "--field", "n", "--output", str(tmp_path / "b")]) == 2
    assert "expected text" in capsys.readouterr().err
    assert main(["dedup", str(path), "--keep", "biggest", "--output", str(tmp_path / "c")]) == 2
    assert not (tmp_path / "c").exists()


def test_signatures_are_uint32_per_kept_row(tmp_path, jsonl):
    rows = [{"text": t} for t in make_docs(10)] + [{"text": make_docs(1)[0]}]
    kept, _, manifest = dedup([jsonl("s.jsonl", rows), "--num-perm", "64"], tmp_path / "run")
    sig = np.load(tmp_path / "run" / "signatures.npy")
    assert sig.dtype == np.uint32 and sig.shape == (kept.height, 64)
    assert manifest["minhash"]["num_perm"] == 64


def test_signature_verification_mode(tmp_path, jsonl):
    docs = make_docs(20)
    rows = [{"id": f"d{i}", "text": t} for i, t in enumerate(docs)] + [{"id": "twin", "text": mutate(docs[4], 1, seed=4)}]
    _, removed, manifest = dedup([jsonl("v.jsonl", rows), "--verify", "signature"], tmp_path / "run")
    assert removed["id"].to_list() == ["twin"] and removed["duplicate_of"].to_list() == ["d4"]
    assert manifest["config"]["verify"] == "signature"


def test_a_very_large_document_is_processed_not_crashed(tmp_path, jsonl):
    big = " ".join(make_docs(1, length=1000)[0] for _ in range(300))  # ~1.5 MB, 300k words
    _, removed, _ = dedup([jsonl("big.jsonl", [{"text": big}, {"text": big + " tail"}])], tmp_path / "run")
    assert removed["reason"].to_list() == ["near_duplicate"]
    assert main(["curate", str(tmp_path / "big.jsonl"), "--no-dedup", "--no-decontam", "--output",
                 str(tmp_path / "cur"), "--config", str(_yaml(tmp_path, "filter_settings: {length: {max_chars: 100000}}"))]) == 0
    assert pl.read_parquet(tmp_path / "cur" / "removed.parquet")["reason"].to_list() == ["length:max_chars"] * 2


def _yaml(tmp_path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(text + "\n")
    return path


def test_input_with_only_empty_texts(tmp_path, jsonl):
    kept, removed, manifest = dedup([jsonl("e.jsonl", [{"text": ""}, {"text": " ?! "}])], tmp_path / "run")
    assert kept.height == 0 and manifest["dropped"] == {"empty_text": 2}


def test_verification_sets_from_memory_spill_file_or_re_read_give_the_same_output(tmp_path, jsonl, monkeypatch):
    """Pass 1 keeps each row's n-gram hashes (in memory, or spilled to the run directory past the budget);
    verification from them equals the re-read-and-re-tokenise path the Ray engine takes."""
    from curate.dedup import LocalDedup, ShingleFile

    docs = make_docs(60, length=200)
    rows = [{"id": f"d{i}", "text": t} for i, t in enumerate(docs)]
    rows += [{"id": f"n{i}", "text": mutate(docs[i], 1 + i % 12, seed=i)} for i in range(40)]
    rows += [{"id": "short", "text": "tiny doc"}, {"id": "short2", "text": "Tiny doc!"}, {"id": "e", "text": ""}]
    path = jsonl("v.jsonl", rows)
    outputs, seen = {}, []
    original = ShingleFile.sets

    def watched(self, wanted):  # where the sets come from: (held in memory, spill file present)
        seen.append((self.file is None, self.path.exists()))
        return original(self, wanted)

    monkeypatch.setattr(ShingleFile, "sets", watched)
    for mode in ("memory", "spilled", "re-read"):
        monkeypatch.setattr(ShingleFile, "MEMORY", 64 if mode == "spilled" else 1 << 27)
        monkeypatch.setattr(LocalDedup, "keeps_shingles", mode != "re-read")
        _, removed, manifest = dedup([path, "--no-exact"], tmp_path / mode)
        outputs[mode] = (removed.drop("source").to_dicts(), manifest["dedup"])
        assert not list((tmp_path / mode).glob(".shingles*"))  # the spill goes when the run ends
    assert seen == [(True, False), (False, True)]
    assert outputs["memory"] == outputs["spilled"] == outputs["re-read"]
    removed, stats = outputs["memory"]
    assert {r["id"] for r in removed} >= {"short2"} and stats["verified_pairs"] >= 10


def test_overwrite_is_a_config_option_of_the_python_api_and_a_flag_anywhere(tmp_path, jsonl, capsys):
    """No process-wide switch: one call may replace a foreign directory (`DedupConfig(overwrite=True)`, or
    `--overwrite` after any argument) while the next, without it, is refused."""
    from curate import DedupConfig, deduplicate
    from workbench.errors import InputError

    src = jsonl("c.jsonl", [{"id": f"r{i}", "text": f"row {i % 3} of the set"} for i in range(6)])
    outs = [tmp_path / name for name in ("api", "api-no", "cli", "cli-no")]
    for out in outs:
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    assert deduplicate(DedupConfig(overwrite=True), [src], outs[0])["rows_out"] == 3
    with pytest.raises(InputError, match="not a wb run"):
        deduplicate(DedupConfig(), [src], outs[1])
    assert main(["dedup", str(src), "--output", str(outs[2]), "--overwrite", "--threshold", "0.7"]) == 0
    assert main(["dedup", str(src), "--output", str(outs[3])]) == 2
    assert "not a wb run (notes.txt)" in capsys.readouterr().err
    assert [(out / "notes.txt").exists() for out in outs] == [False, True, False, True]
    manifest = json.loads((outs[2] / "manifest.json").read_text())
    assert manifest["overwrite"] is True and manifest["config"]["threshold"] == 0.7
    assert "overwrite" not in manifest["config"] and "argv" not in manifest["config"]


def test_a_wb_dedup_process_imports_neither_pandas_nor_scipy_linalg(tmp_path, jsonl):
    """Issue 29: pyarrow's pandas probe and numba's BLAS probe cost a third of a small run's start-up; a
    `wb dedup` process skips both (and still finds the duplicate), and pandas works if asked for later."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    docs = make_docs(5)
    path = jsonl("d.jsonl", [{"text": t} for t in docs] + [{"text": docs[2]}])
    script = ("import sys; sys.argv = ['wb', 'dedup', sys.argv[1], '--output', sys.argv[2]]\n"
              "from workbench.cli import main\n"
              "assert main() == 0\n"
              "print(sorted(m for m in ('pandas', 'scipy.linalg', 'scipy.sparse') if m in sys.modules))\n"
              "import pyarrow as pa\n"
              "print(type(pa.table({'a': [1]}).to_pandas()).__name__)\n")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script, str(path), str(tmp_path / "out")], capture_output=True,
                          text=True, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == ["[]", "DataFrame"]
    assert pl.read_parquet(tmp_path / "out" / "removed.parquet")["id"].to_list() == ["d-5"]
