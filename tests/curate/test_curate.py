"""`wb curate` and `wb decontam` end to end on bundled data: decontamination of re-wrapped benchmark
text, the whole pipeline's removed.parquet and manifest, and conversation fields."""

from __future__ import annotations

import json

import polars as pl
from curate_corpus import make_docs, mutate

from workbench.cli import main
from workbench.workspace import bundled_data_dir


def gsm8k_test(i: int) -> dict:
    with open(bundled_data_dir() / "gsm8k" / "test.jsonl") as f:
        return [json.loads(line) for _, line in zip(range(i + 1), f, strict=False)][i]


def rewrap(text: str, width: int = 6) -> str:
    words = text.split()
    return "\n".join(" ".join(words[i:i + width]) for i in range(0, len(words), width))


def test_rewrapped_gsm8k_question_is_caught(tmp_path, jsonl, capsys):
    question = gsm8k_test(5)["question"]
    rows = [{"id": "leak", "text": "Here is a practice problem:\n" + rewrap(question) + "\nGood luck!"},
            {"id": "clean", "text": make_docs(1)[0]}]
    out = tmp_path / "run"
    assert main(["decontam", str(jsonl("c.jsonl", rows)), "--output", str(out)]) == 0
    removed = pl.read_parquet(out / "removed.parquet")
    assert removed["id"].to_list() == ["leak"]
    row = removed.row(0, named=True)
    assert row["reason"] == "contaminated:gsm8k_test"
    assert "gsm8k_test item 5" in row["detail"]
    assert " ".join(question.lower().replace(",", " ").split()[:8]) in row["detail"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["contamination"] == {"gsm8k_test": 1, "math500": 0}
    assert pl.read_parquet(out / "data.parquet")["id"].to_list() == ["clean"]


def test_math500_answer_and_a_custom_benchmark_file(tmp_path, jsonl):
    with open(bundled_data_dir() / "math500" / "test.jsonl") as f:
        item = json.loads(f.readline())
    bench = jsonl("mybench.jsonl", [{"problem": "Compute the number of lattice points strictly inside the "
                                                "ellipse whose equation is given below in standard form"}])
    rows = [{"prompt": "Solve it.", "completion": item["answer"]},
            {"prompt": "Please compute the number of lattice points strictly inside the ellipse whose "
                       "equation is given below in standard form, thanks", "completion": "ok"},
            {"prompt": "What is two plus two?", "completion": "4"}]
    out = tmp_path / "run"
    assert main(["decontam", str(jsonl("sft.jsonl", rows)), "--benchmark", "math500", str(bench), "--ngram", "10",
                 "--output", str(out)]) == 0
    reasons = dict(pl.read_parquet(out / "removed.parquet").select("id", "reason").iter_rows())
    assert reasons == {"sft-0": "contaminated:math500", "sft-1": "contaminated:mybench"}


def test_curate_pipeline_explains_every_removed_row(tmp_path, jsonl):
    docs = make_docs(30)
    rows = [{"text": t} for t in docs]
    rows += [{"text": docs[0]}, {"text": mutate(docs[1], 2, seed=1)}, {"text": "too short"},
             {"text": "Contact me at someone@example.com. " + docs[2][:200]},
             {"text": rewrap(gsm8k_test(7)["question"] + " " + gsm8k_test(7)["answer"])}]
    config = tmp_path / "curate.yaml"
    config.write_text("filters: [length]\nfilter_settings:\n  length: {min_words: 5}\npii: redact\n"
                      "dedup_settings: {keep: longest}\n")
    out = tmp_path / "run"
    assert main(["curate", str(jsonl("mix.jsonl", rows)), "--output", str(out), "--config", str(config),
                 "--threshold", "0.8"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    removed = pl.read_parquet(out / "removed.parquet")
    kept = pl.read_parquet(out / "data.parquet")
    assert manifest["dropped"] == {"contaminated:gsm8k_test": 1, "exact_duplicate": 1, "length:min_words": 1,
                                   "near_duplicate": 1}
    assert manifest["rows_in"] == 35 and manifest["rows_out"] == kept.height == 31
    assert removed.filter(pl.col("reason") == "exact_duplicate")["duplicate_of"].to_list() == ["mix-0"]
    longer = "mix-31" if len(rows[31]["text"]) > len(docs[1]) else "mix-1"  # keep: longest, from the YAML
    assert removed.filter(pl.col("reason") == "near_duplicate")["duplicate_of"].to_list() == [longer]
    assert all(removed["detail"].is_not_null())
    redacted = kept.filter(pl.col("id") == "mix-33")["text"][0]
    assert "<EMAIL>" in redacted and "someone@" not in redacted
    assert manifest["config"]["dedup"]["keep"] == "longest"
    assert manifest["config"]["dedup"]["threshold"] == 0.8


def test_curate_on_conversation_responses(tmp_path, jsonl):
    answer = make_docs(1)[0]
    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": answer}]}
            for q in ("first question here", "second, unrelated question")]
    out = tmp_path / "run"
    assert main(["curate", str(jsonl("chat.jsonl", rows)), "--field", "messages.response", "--no-decontam",
                 "--output", str(out)]) == 0
    removed = pl.read_parquet(out / "removed.parquet")
    assert removed["id"].to_list() == ["chat-1"] and removed["reason"].to_list() == ["exact_duplicate"]
    assert removed["messages"].to_list()[0][0]["content"] == "second, unrelated question"


def test_a_crash_leaves_no_complete_looking_output(tmp_path, jsonl):
    out = tmp_path / "run"
    path = jsonl("x.jsonl", [{"text": "a b c"}])
    assert main(["curate", str(path), "--filters", "length", "perplexity", "--output", str(out)]) == 2
    assert not (out / "manifest.json").exists() and not (out / "data.parquet").exists()


def test_the_example_config_runs(tmp_path, jsonl):
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "configs" / "curate.yaml"
    rows = [{"text": t} for t in make_docs(10)] + [{"text": make_docs(1)[0]}]
    out = tmp_path / "run"
    assert main(["curate", str(jsonl("x.jsonl", rows)), "--config", str(example), "--output", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dropped"] == {"exact_duplicate": 1} and manifest["config"]["dedup"]["keep"] == "longest"


def test_lineage_from_a_dedup_run_through_curate_to_the_source_row(tmp_path, jsonl, capsys):
    from curate import CurateConfig, DedupConfig, curate, deduplicate
    from workbench.lineage import trace

    docs = make_docs(12)
    src = jsonl("corpus.jsonl", [{"text": t} for t in docs] + [{"text": docs[3]}])  # row 12 repeats row 3
    curated = curate(CurateConfig(decontam=False), [src], tmp_path / "cur")
    assert curated["dropped"] == {"exact_duplicate": 1}
    deduplicate(DedupConfig(), [curated.path], tmp_path / "dd")

    hops = trace(tmp_path / "dd", "corpus-5")
    assert [(h.kind, h.stage) for h in hops] == [("kept", "dedup"), ("kept", "curate"), ("source", None)]
    assert hops[-1].row == 5 and hops[-1].path.endswith("corpus.jsonl")

    dropped = trace(tmp_path / "dd", "corpus-12")
    assert [h.kind for h in dropped] == ["dropped", "source"]
    assert dropped[0].stage == "curate" and dropped[0].reason == "exact_duplicate" and "corpus-3" in dropped[0].detail
    assert main(["lineage", str(tmp_path / "dd"), "corpus-12"]) == 0
    assert "DROPPED by curate: exact_duplicate" in capsys.readouterr().out
    assert main(["lineage", str(tmp_path / "dd"), "nope"]) == 2


def test_every_stage_refuses_records_training_would_refuse(tmp_path, jsonl, capsys):
    """A message with role "hacker" must not reach data.parquet (training refuses it later)."""
    good = [{"role": "user", "content": "q"}, {"role": "assistant", "content": make_docs(1)[0]}]
    rows = [{"messages": good}, {"messages": [{"role": "user", "content": "q2"},
                                             {"role": "hacker", "content": "rm -rf /"}]}]
    path = jsonl("chat.jsonl", rows)
    for command in (["curate", "--no-decontam", "--field", "messages.response"], ["dedup"], ["decontam"]):
        out = tmp_path / command[0]
        assert main([command[0], str(path), *command[1:], "--output", str(out)]) == 2
        err = capsys.readouterr().err
        assert 'chat.jsonl: row 2: "messages"[1].role must be one of' in err and '"hacker"' in err, err
        assert not (out / "data.parquet").exists()
    prompts = jsonl("p.jsonl", [{"prompt": [{"role": "user", "content": "x"}]}, {"prompt": [{"role": "root", "content": "x"}]}])
    assert main(["dedup", str(prompts), "--output", str(tmp_path / "p")]) == 2
    assert 'p.jsonl: row 2: "prompt"[0].role must be one of' in capsys.readouterr().err


def test_a_chat_row_with_no_assistant_turn_is_removed_not_fatal(tmp_path, jsonl):
    """Issue 25: with `turns` (or --on-bad-row drop) a row training would refuse goes to removed.parquet."""
    docs = make_docs(3)
    good = [{"messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": d}]}
            for i, d in enumerate(docs)]
    rows = [good[0], {"messages": [{"role": "user", "content": "no answer here"}]}, good[1],
            {"messages": [{"role": "user", "content": "q"}, {"role": "hacker", "content": "rm -rf /"}]}, good[2]]
    path = jsonl("chat.jsonl", rows)
    common = ["--no-decontam", "--field", "messages.response"]

    out = tmp_path / "turns"
    assert main(["curate", str(path), "--filters", "turns", *common, "--output", str(out)]) == 0
    removed = pl.read_parquet(out / "removed.parquet")
    assert dict(zip(removed["id"], removed["reason"], strict=True)) == {
        "chat-1": "turns:no_response", "chat-3": "turns:unknown_role"}
    assert 'chat.jsonl: row 2: "messages" has no assistant message' in removed["detail"][0]
    assert pl.read_parquet(out / "data.parquet")["id"].to_list() == ["chat-0", "chat-2", "chat-4"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows_in"] == 5 and manifest["rows_out"] == 3
    assert manifest["steps"]["turns"]["dropped"] == {"turns:no_response": 1, "turns:unknown_role": 1}

    out = tmp_path / "drop"
    assert main(["curate", str(path), "--on-bad-row", "drop", *common, "--output", str(out)]) == 0
    removed = pl.read_parquet(out / "removed.parquet")
    assert removed["reason"].to_list() == ["invalid_row", "invalid_row"]
    assert removed["id"].to_list() == ["chat-1", "chat-3"]
    assert '"messages"[1].role must be one of' in removed["detail"][1]
    assert json.loads((out / "manifest.json").read_text())["dropped"] == {"invalid_row": 2}

    # a fault in the column itself is no row's fault: it still stops the run
    strings = jsonl("s.jsonl", [{"messages": "not a list"}])
    assert main(["curate", str(strings), "--on-bad-row", "drop", *common, "--output", str(tmp_path / "s")]) == 2
