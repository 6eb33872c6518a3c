"""Delta pairs from a scripted server: every degenerate case, the verifier swap/drop, TRL form, resume."""

from __future__ import annotations

import json

import polars as pl
import pyarrow.parquet as pq
import pytest
from prefs_helpers import fast_config, write_questions

from prefs.pipeline import make_pairs
from workbench.errors import InputError
from workbench.io import open_source
from workbench.schemas import detect_kind, validate_tables

# question -> (strong markers, weak markers); the reference answer is always 4.
CASES = {
    "d-agree": ("[reply:so #### 4]", "[reply:so #### 5]"),
    "d-identical": ("[reply:#### 4]", "[reply:#### 4]"),
    "d-empty": ("[reply:]", "[reply:#### 5]"),
    "d-truncated": ("[reply:#### 4]", "[reply:#### 4 and][length]"),
    "d-failed": ("[reply:#### 4]", "[400]"),
    "d-inverted": ("[reply:#### 7]", "[reply:=> #### 4]"),
    "d-both-wrong": ("[reply:#### 7]", "[reply:#### 8]"),
    "d-both-right": ("[think][reply:#### 4]", "[reply:it is #### 4]"),
}


def script_cases(scripted, cases: dict) -> None:
    for q, (strong, weak) in cases.items():
        scripted.scripts.set("strong", q, strong)
        scripted.scripts.set("weak", q, weak)


def test_delta_pairs_degenerate_cases_and_swap(tmp_path, scripted):
    script_cases(scripted, CASES)
    src = write_questions(tmp_path / "q.jsonl", list(CASES))
    manifest = make_pairs(fast_config(src, tmp_path / "run", scripted.url, verify="math"))
    data = pl.read_parquet(tmp_path / "run" / "data.parquet")
    removed = pl.read_parquet(tmp_path / "run" / "removed.parquet")
    kept = {r["prompt"][0]["content"]: r for r in data.iter_rows(named=True)}
    assert set(kept) == {"d-agree", "d-inverted", "d-both-wrong", "d-both-right"}
    assert dict(zip(removed["prompt"].list.first().struct.field("content"), removed["reason"], strict=True)) == {
        "d-identical": "identical_text", "d-empty": "empty", "d-truncated": "truncated", "d-failed": "failed"}
    agree = kept["d-agree"]
    assert agree["chosen"] == [{"role": "assistant", "content": "so #### 4"}]
    assert agree["rejected"] == [{"role": "assistant", "content": "so #### 5"}]
    assert (agree["chosen_model"], agree["rejected_model"], agree["verdict"]) == ("strong", "weak", "chosen_correct")
    assert (agree["chosen_score"], agree["rejected_score"]) == (1.0, 0.0)
    swapped = kept["d-inverted"]  # the verifier overrules the model order
    assert swapped["chosen"][0]["content"] == "=> #### 4" and swapped["chosen_model"] == "weak"
    assert swapped["verdict"] == "swapped" and swapped["chosen_verified"] and not swapped["rejected_verified"]
    assert kept["d-both-wrong"]["verdict"] == "both_wrong" and kept["d-both-wrong"]["chosen_model"] == "strong"
    both = kept["d-both-right"]
    assert both["verdict"] == "both_correct"
    assert both["chosen"][0]["content"].startswith("<think>\nthinking 0\n</think>")  # reasoning rendered
    assert set(data["strategy"]) == {"delta"} and set(data["source"]) == {"q.jsonl"}
    assert data["chosen_tokens"].to_list() == [5, 5, 5, 5] and data["chosen_chars"][0] == len("so #### 4")

    stats = manifest["pair_stats"]
    assert stats["candidates"] == 8 and stats["kept"] == 4
    assert stats["dropped"] == {"identical_text": 1, "empty": 1, "truncated": 1, "failed": 1}
    assert manifest["dropped"] == stats["dropped"] and manifest["rows_out"] == 4
    assert stats["verifier"] == {"counts": {"chosen_correct": 1, "swapped": 1, "both_wrong": 1, "both_correct": 1},
                                 "agreement": 0.5}
    assert stats["lengths"]["chosen"]["tokens"]["count"] == 4 and stats["chosen_models"] == {"strong": 3, "weak": 1}
    assert manifest["models"]["weak"]["status_counts"] == {"ok": 6, "truncated": 1, "failed": 1}
    assert manifest["usage"]["requests"] == 15 and manifest["usage"]["sampled_tokens"] == 75

    # The product is TRL's explicit-prompt conversational preference form.
    source = open_source(tmp_path / "run")
    assert detect_kind(source.schema()) == "preference"
    assert validate_tables(source.iter_rows_with_file(), "preference") == 4
    from datasets import load_dataset

    ds = load_dataset("parquet", data_files=str(tmp_path / "run" / "data.parquet"), split="train")
    assert ds[0]["prompt"] == [{"role": "user", "content": "d-agree"}] and ds[0]["chosen"][0]["role"] == "assistant"


def test_inverted_pairs_can_be_dropped(tmp_path, scripted):
    script_cases(scripted, {"i-1": ("[reply:#### 7]", "[reply:#### 4]"), "i-2": ("[reply:#### 4]", "[reply:#### 1]")})
    src = write_questions(tmp_path / "q.jsonl", ["i-1", "i-2"])
    manifest = make_pairs(fast_config(src, tmp_path / "run", scripted.url, verify="math", on_inverted="drop"))
    removed = pq.read_table(tmp_path / "run" / "removed.parquet").to_pylist()
    assert [(r["prompt_id"], r["reason"], r["verdict"]) for r in removed] == [("0", "verifier_inverted", "inverted")]
    assert manifest["pair_stats"]["verifier"]["agreement"] == 0.5 and manifest["rows_out"] == 1


def test_delta_without_verifier_pairs_samples_index_by_index(tmp_path, scripted):
    script_cases(scripted, {"n-1": ("[replies:a|b|c]", "[replies:x|b|z]")})
    src = write_questions(tmp_path / "q.jsonl", ["n-1"])
    make_pairs(fast_config(src, tmp_path / "run", scripted.url, n=3, temperature=0.8))
    data = pq.read_table(tmp_path / "run" / "data.parquet").to_pylist()
    assert [(r["id"], r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in data] == [
        ("0-0", "a", "x"), ("0-2", "c", "z")]
    assert all(r["verdict"] is None and r["chosen_score"] is None for r in data)
    assert pq.read_table(tmp_path / "run" / "removed.parquet").column("reason").to_pylist() == ["identical_text"]


def test_resume_sends_only_failed_units(tmp_path, scripted):
    script_cases(scripted, {"r-1": ("[reply:#### 4]", "[reply:#### 3]"), "r-2": ("[reply:#### 4]", "[500:3][reply:#### 2]")})
    src = write_questions(tmp_path / "q.jsonl", ["r-1", "r-2"])
    cfg = fast_config(src, tmp_path / "run", scripted.url, verify="math")
    first = make_pairs(cfg)
    assert first["pair_stats"]["dropped"] == {"failed": 1}  # 3 attempts, 3 scripted 500s
    before = sum(scripted.counts.values())
    second = make_pairs(cfg)
    assert sum(scripted.counts.values()) - before == 1  # only the failed weak unit is asked again
    assert second["rows_out"] == 2 and second["pair_stats"]["dropped"] == {}
    assert second["usage"]["requests"] == 4  # ok requests across both runs, from the ledger
    third = make_pairs(cfg)
    assert sum(scripted.counts.values()) - before == 1 and third["pair_stats"] == second["pair_stats"]
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "complete"


def test_bad_configs_are_one_line_errors(tmp_path, scripted):
    src = write_questions(tmp_path / "q.jsonl", ["e-1"])
    with pytest.raises(InputError, match="needs --weak-model"):
        make_pairs(fast_config(src, tmp_path / "a", scripted.url, weak_model=None))
    with pytest.raises(InputError, match="serve them under different names"):
        make_pairs(fast_config(src, tmp_path / "b", scripted.url, weak_model="strong"))
    with pytest.raises(InputError, match="needs --verify"):
        make_pairs(fast_config(src, tmp_path / "c", scripted.url, strategy="best-vs-worst"))
    with pytest.raises(InputError, match="needs --reward-model"):
        make_pairs(fast_config(src, tmp_path / "d", scripted.url, strategy="best-vs-worst", score="reward-model"))
    assert not (tmp_path / "b").exists()


def test_a_side_whose_every_unit_failed_fails_the_run(tmp_path, scripted):
    from workbench.errors import RunFailed
    from workbench.runfiles import run_state

    script_cases(scripted, {q: ("[reply:#### 4]", "[400]") for q in ("w-1", "w-2")})  # a wrong weak model name
    src = write_questions(tmp_path / "q.jsonl", ["w-1", "w-2"])
    with pytest.raises(RunFailed, match=r"every weak-model unit failed \(2 of 2; first error: 400"):
        make_pairs(fast_config(src, tmp_path / "run", scripted.url, verify="math"))
    st = run_state(tmp_path / "run")
    assert st.state == "failed" and st.error.startswith("every weak-model unit failed")
    assert not (tmp_path / "run" / "data.parquet").exists()
