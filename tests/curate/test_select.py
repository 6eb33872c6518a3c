"""`wb select`: top rows by length (per question group), random, a fastText classifier trained with
`wb select train-classifier`, and an LLM judge's difficulty through a scripted server (resumed from the
ledger, usage counted); dropped rows land in removed.parquet with reason `not_selected` and their score."""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from curate_corpus import make_docs

from curate.select import parse_keep, top_mask
from tests.mock_server import MockServer
from workbench.cli import main
from workbench.errors import InputError
from workbench.workspace import bundled_data_dir


def read_run(path):
    manifest = json.loads((path / "manifest.json").read_text())
    return manifest, pq.read_table(path / "data.parquet"), pq.read_table(path / "removed.parquet")


def test_length_keeps_the_longest_responses_in_input_order(jsonl, tmp_path):
    rows = [{"question": f"q{i}", "answer": "x " * n} for i, n in enumerate([3, 40, 7, 40, 1, 25])]
    src = jsonl("qa.jsonl", rows)
    assert main(["select", str(src), "--strategy", "length", "--keep", "3", "--output", str(tmp_path / "r")]) == 0
    manifest, kept, removed = read_run(tmp_path / "r")
    assert kept["question"].to_pylist() == ["q1", "q3", "q5"]
    assert kept["select_score"].to_pylist() == [80.0, 80.0, 50.0]
    assert removed["question"].to_pylist() == ["q0", "q2", "q4"]
    assert set(removed["reason"].to_pylist()) == {"not_selected"}
    assert removed["select_score"].to_pylist() == [6.0, 14.0, 2.0]
    assert "below the cutoff 50" in removed["detail"][0].as_py()
    assert (manifest["rows_in"], manifest["rows_out"], manifest["dropped"]) == (6, 3, {"not_selected": 3})


def test_length_by_question_keeps_whole_groups_scored_by_their_longest_answer(jsonl, tmp_path):
    rows = [{"prompt_id": p, "prompt": p, "content": "y" * n} for p, n in
            [("a", 5), ("b", 50), ("a", 60), ("c", 10), ("b", 2), ("c", 9)]]
    src = jsonl("units.jsonl", rows)
    assert main(["select", str(src), "--keep", "2", "--output", str(tmp_path / "g")]) == 0
    manifest, kept, removed = read_run(tmp_path / "g")
    assert kept["prompt_id"].to_pylist() == ["a", "b", "a", "b"]
    assert removed["prompt_id"].to_pylist() == ["c", "c"]
    assert manifest["select"]["group_by"] == "prompt_id" and manifest["select"]["kept_units"] == 2
    assert main(["select", str(src), "--keep", "2", "--group-by", "none", "--output", str(tmp_path / "n")]) == 0
    assert read_run(tmp_path / "n")[1]["content"].to_pylist() == ["y" * 50, "y" * 60]


def test_the_python_api_returns_the_run(jsonl, tmp_path):
    from curate import SelectConfig, select_rows

    src = jsonl("qa.jsonl", [{"question": f"q{i}", "answer": "x" * i} for i in range(1, 6)])
    result = select_rows(SelectConfig(strategy="length", keep="0.4"), [src], tmp_path / "api")
    assert result["rows_out"] == 2 and result.read()["question"].to_pylist() == ["q4", "q5"]
    with pytest.raises(InputError, match="--strategy"):
        select_rows(SelectConfig(strategy="shortest", keep="1"), [src], tmp_path / "bad")


def test_random_is_seeded_and_keeps_a_fraction(jsonl, tmp_path):
    src = jsonl("t.jsonl", [{"text": t} for t in make_docs(40, length=10)])
    picks = []
    for seed in (1, 1, 2):
        out = tmp_path / f"r{len(picks)}"
        assert main(["select", str(src), "--strategy", "random", "--keep", "25%", "--seed", str(seed),
                     "--output", str(out)]) == 0
        picks.append(read_run(out)[1]["id"].to_pylist())
    assert len(picks[0]) == 10 and picks[0] == picks[1] and picks[0] != picks[2]


def test_random_by_group_draws_once_per_group(jsonl, tmp_path):
    rows = [{"prompt_id": "big", "prompt": "p", "content": str(i)} for i in range(50)]
    rows += [{"prompt_id": f"small{i}", "prompt": "p", "content": "x"} for i in range(50)]
    src = jsonl("units.jsonl", rows)
    chosen_big = 0
    for seed in range(20):
        out = tmp_path / f"s{seed}"
        assert main(["select", str(src), "--strategy", "random", "--keep", "1", "--seed", str(seed),
                     "--output", str(out)]) == 0
        kept = read_run(out)[1]
        assert len(set(kept["prompt_id"].to_pylist())) == 1 and len(set(kept["select_score"].to_pylist())) == 1
        chosen_big += kept["prompt_id"][0].as_py() == "big"
    assert chosen_big <= 3  # 1 of 51 groups; with a max over rows the 50-row group would win almost always


def test_keep_parsing_and_bad_input():
    assert [parse_keep(k, 200) for k in ("10", "0.25", "5%", "1", "1.0", "500")] == [10, 50, 10, 1, 200, 200]
    for bad in ("0", "1.5", "-3", "lots", ""):
        with pytest.raises(InputError, match="--keep"):
            parse_keep(bad, 10)
    assert top_mask(np.array([1.0, float("nan"), 3.0, 3.0]), 2).tolist() == [False, False, True, True]


def test_select_errors_name_the_option(jsonl, tmp_path, capsys):
    src = str(jsonl("t.jsonl", [{"text": "a b c"}]))
    assert main(["select", src, "--keep", "1", "--group-by", "nope", "--output", str(tmp_path / "x")]) == 2
    assert main(["select", src, "--strategy", "classifier", "--keep", "1", "--output", str(tmp_path / "y")]) == 2
    assert main(["select", src, "--output", str(tmp_path / "z")]) == 2
    err = capsys.readouterr().err
    assert "--group-by 'nope'" in err and "needs --classifier" in err and "--keep is required" in err
    assert not (tmp_path / "x").exists()


def test_classifier_trained_on_labelled_rows_ranks_math_questions_first(jsonl, tmp_path, capsys):
    questions = [json.loads(line)["question"] for line in
                 (bundled_data_dir() / "gsm8k" / "train.jsonl").read_text().splitlines()[:300]]
    prose = make_docs(300, length=25)
    good = jsonl("good.jsonl", [{"question": q} for q in questions[:150]])
    bad = jsonl("bad.jsonl", [{"question": p} for p in prose[:150]])
    clf = tmp_path / "clf"
    assert main(["select", "train-classifier", "--good", str(good), "--bad", str(bad), "--output", str(clf)]) == 0
    trained = json.loads((clf / "manifest.json").read_text())
    assert trained["classifier"]["train_accuracy"] > 0.95 and (clf / "classifier.bin").is_file()
    mixed_rows = []
    for question, text in zip(questions[150:200], prose[150:200], strict=True):
        mixed_rows += [{"question": question, "kind": "g"}, {"question": text, "kind": "p"}]
    mixed = jsonl("mixed.jsonl", mixed_rows)
    assert main(["select", str(mixed), "--strategy", "classifier", "--classifier", str(clf), "--keep", "50",
                 "--output", str(tmp_path / "sel")]) == 0
    _, kept, removed = read_run(tmp_path / "sel")
    assert sum(k == "g" for k in kept["kind"].to_pylist()) >= 48  # held-out rows, so a couple may swap
    assert min(kept["select_score"].to_pylist()) >= max(removed["select_score"].to_pylist())


def difficulty_script(failing: set[str]):
    """The judge rates a question `... dN` with N; questions in `failing` get a 400."""
    def script(text: str, request: dict) -> str:
        found = re.search(r"\bd(\d+)\b", text)
        if any(f in text for f in failing):
            return "[400]"
        return f"[reply:Looks hard enough. DIFFICULTY: {found.group(1)}]" if found else "[reply:no idea]"
    return script


def test_difficulty_by_an_llm_judge_resumes_from_the_ledger(jsonl, tmp_path, capsys):
    rows = [{"prompt_id": f"p{i}", "question": f"How many apples, case d{d}?", "answer": "4"}
            for i, d in enumerate([3, 9, 5, 8, 1])]
    rows.append({"prompt_id": "p1", "question": "How many apples, case d9?", "answer": "5"})  # a 2nd sample
    rows.append({"prompt_id": "p5", "question": "What is this? nothing", "answer": "?"})  # no rating given
    src = jsonl("q.jsonl", rows)
    failing = {"d8"}
    server = MockServer(script=difficulty_script(failing)).start()
    try:
        args = ["select", str(src), "--strategy", "difficulty", "--judge-model", "judge", "--judge-base-url",
                server.url, "--keep", "2", "--chunk", "2", "--max-attempts", "1", "--price-in", "1", "--price-out", "2",
                "--output", str(tmp_path / "d")]
        assert main(args) == 0
        manifest, kept, removed = read_run(tmp_path / "d")
        assert kept["prompt_id"].to_pylist() == ["p1", "p2", "p1"]  # 9 and 5; d8 failed and ranks last
        assert manifest["select"]["unrated"] == 1 and "re-run the same command" in capsys.readouterr().out
        failed = removed.filter(pc.equal(removed["prompt_id"], "p3"))
        assert failed["detail"][0].as_py().startswith("judge failed") and failed["select_score"][0].as_py() is None
        assert manifest["usage"]["requests"] == 5  # 6 distinct questions, one failed

        failing.clear()
        asked = sum(server.counts.values())
        assert main(args) == 0
        manifest, kept, _ = read_run(tmp_path / "d")
        assert sum(server.counts.values()) == asked + 1  # only the failed question is asked again
        assert kept["prompt_id"].to_pylist() == ["p1", "p3", "p1"]  # 9 and 8
        usage = manifest["usage"]
        assert usage["requests"] == 6 and usage["prefill_tokens"] > 0
        assert usage["cost_usd"] == pytest.approx((usage["prefill_tokens"] + 2 * usage["sampled_tokens"]) / 1e6)
        assert manifest["select"]["unrated"] == 0
    finally:
        server.stop()
