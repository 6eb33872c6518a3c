"""`wb mix build` for SFT rows: `--rows` sizing in proportion to the weights, the source columns every domain
has kept beside `text`, lineage back to the source rows, `wb train sft` on the build as it is, and the
column rules (dropped when not shared, refused when asked for and missing) as one-line errors."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from mixopt.build import BuildConfig, row_quotas, run_build
from mixopt.plan import PlanConfig, make_plan
from workbench.cli import main
from workbench.errors import InputError
from workbench.rundir import read_manifest


def _rows(domain: str, count: int, extra: dict | None = None) -> list[dict]:
    out = []
    for i in range(count):
        question, answer = f"{domain} {i} {i * 7 % 13}", f"#### {i * 7 % 13 + i}"
        out.append({"id": f"{domain}-{i}", "question": question, "answer": answer, "text": f"{question}\n{answer}",
                    **(extra or {})})
    return out


@pytest.fixture
def sft_mixture(tmp_path):
    """Two question/answer domains (`p` also has a `note` column) planned, and a hand-written mixture 0.7/0.3."""
    sources = {"p": _rows("p", 100, {"note": "only in p"}), "q": _rows("q", 100)}
    for name, rows in sources.items():
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "domains.yaml").write_text("domains:\n  p: p.jsonl\n  q: q.jsonl\nheldout_fraction: 0.1\n"
                                           "max_epochs: 4\n")
    make_plan(tmp_path / "domains.yaml", tmp_path / "plan", PlanConfig(runs=4, tokens_per_run=1000))
    path = tmp_path / "mixture.json"
    path.write_text(json.dumps({"weights": {"p": 0.7, "q": 0.3}, "plan_dir": str(tmp_path / "plan")}))
    return path, {r["id"]: r for rows in sources.values() for r in rows}


def test_rows_sizing_keeps_shared_columns_and_trains_sft(tmp_path, sft_mixture, tiny_model_dir, capsys):
    mixture, source = sft_mixture
    out = tmp_path / "build"
    assert main(["mix", "build", str(mixture), "--output", str(out), "--rows", "300"]) == 0
    log = capsys.readouterr().out
    assert "dropped: p: note" in log and "300 rows" in log and "(text, question, answer)" in log
    corpus = pq.read_table(out / "data.parquet").to_pylist()
    assert len(corpus) == 300 and set(corpus[0]) == {"id", "text", "question", "answer", "domain", "source_id",
                                                      "epoch", "truncated"}
    by_domain = {d: [r for r in corpus if r["domain"] == d] for d in ("p", "q")}
    assert len(by_domain["p"]) == 210 and len(by_domain["q"]) == 90
    for row in corpus:  # every row is its source row, whole
        src = source[row["source_id"]]
        assert (row["question"], row["answer"], row["text"]) == (src["question"], src["answer"], src["text"])
        assert not row["truncated"] and row["domain"] == row["source_id"][0]
    # 210 rows of p's ~90 training rows take passes: each whole pass holds every training row once
    passes: dict[int, list[str]] = {}
    for row in by_domain["p"]:
        passes.setdefault(row["epoch"], []).append(row["source_id"])
    full, last = len(passes[0]), max(passes)
    assert len(set(passes[0])) == full < 100 and last >= 2
    assert all(sorted(passes[e]) == sorted(passes[0]) for e in range(last))
    assert len(set(passes[last])) == len(passes[last]) == 210 - full * last
    manifest = read_manifest(out)
    assert manifest["size"] == {"rows": 300} and manifest["columns"] == ["question", "answer"]
    assert manifest["dropped_columns"] == {"p": ["note"]}
    assert manifest["domains"]["p"]["documents"] == 210 and manifest["domains"]["q"]["share"] == 0.3

    sft = tmp_path / "sft"
    assert main(["train", "sft", "--model", str(tiny_model_dir), "--data", str(out), "--prompt-field", "question",
                 "--completion-field", "answer", "--max-steps", "2", "--batch-size", "4", "--eval-fraction", "0",
                 "--save-every", "0", "--output", str(sft)]) == 0
    trained = read_manifest(sft)
    assert trained["rows_in"] == 300 and trained["usage"]["trained_tokens"] > 0


def test_token_sizing_keeps_the_columns_too(tmp_path, sft_mixture):
    mixture, source = sft_mixture
    counts = run_build(mixture, tmp_path / "b", BuildConfig(tokens=3000, columns=["question"]), log=lambda *_: None)
    corpus = pq.read_table(tmp_path / "b" / "data.parquet")
    assert corpus.column_names == ["id", "text", "question", "domain", "source_id", "epoch", "truncated"]
    # each domain's last document is cut to its share (at a line break, so a few bytes short of it)
    assert 0 <= 2100 - counts["p"]["tokens"] < 20 and 0 <= 900 - counts["q"]["tokens"] < 20
    rows = corpus.to_pylist()
    assert all(r["question"] == source[r["source_id"]]["question"] for r in rows)  # kept columns stay whole
    cut = [r for r in rows if r["truncated"]]
    assert all(source[r["source_id"]]["text"].startswith(r["text"]) for r in cut)


def test_row_quotas_add_up_by_largest_remainders():
    assert row_quotas({"a": 0.5, "b": 0.3, "c": 0.2}, 7) == {"a": 4, "b": 2, "c": 1}
    assert row_quotas({"a": 0.0, "b": 1 / 3, "c": 2 / 3}, 10) == {"a": 0, "b": 3, "c": 7}
    assert sum(row_quotas({"a": 0.333, "b": 0.333, "c": 0.334}, 1001).values()) == 1001


def test_column_rules_are_one_line_errors(tmp_path, sft_mixture, tiny_model_dir, capsys):
    mixture, _ = sft_mixture
    # q loses its answers: asked-for columns are refused before anything is written
    (tmp_path / "q.jsonl").write_text("".join(json.dumps({"id": f"q-{i}", "question": f"q {i}", "text": f"q {i}"})
                                              + "\n" for i in range(100)))
    assert main(["mix", "build", str(mixture), "--output", str(tmp_path / "a"), "--rows", "50",
                 "--columns", "question", "answer"]) == 2
    err = capsys.readouterr().err
    assert "--columns answer: domain 'q'" in err and "has no such column" in err and len(err.strip().splitlines()) == 1
    assert main(["mix", "build", str(mixture), "--output", str(tmp_path / "b"), "--rows", "50", "--tokens", "900"]) == 2
    assert "size the corpus by one of them" in capsys.readouterr().err
    assert main(["mix", "build", str(mixture), "--output", str(tmp_path / "c"), "--rows", "50", "--columns", "id"]) == 2
    assert "--columns id: the build writes that column itself" in capsys.readouterr().err
    assert not any((tmp_path / d).exists() for d in "abc")
    with pytest.raises(InputError, match=r"domain 'p' would need \d\.\d\d epochs of its \d+ rows"):
        run_build(mixture, tmp_path / "d", BuildConfig(rows=700), log=lambda *_: None)

    # by default the unshared column is dropped, and SFT on it names the missing field
    assert main(["mix", "build", str(mixture), "--output", str(tmp_path / "e"), "--rows", "50"]) == 0
    assert read_manifest(tmp_path / "e")["dropped_columns"] == {"p": ["answer", "note"]}
    capsys.readouterr()
    assert main(["train", "sft", "--model", str(tiny_model_dir), "--data", str(tmp_path / "e"), "--prompt-field",
                 "question", "--completion-field", "answer", "--max-steps", "1", "--output", str(tmp_path / "s")]) == 2
    assert "no column 'answer'" in capsys.readouterr().err


def test_messages_from_jsonl_and_parquet_domains_are_kept(tmp_path):
    import pyarrow as pa

    def chats(tag: str) -> list[dict]:
        return [{"id": f"{tag}{i}", "text": f"{tag}{i} hello, {tag}{i} there",
                 "messages": [{"role": "user", "content": f"{tag}{i} hello"},
                              {"role": "assistant", "content": f"{tag}{i} there"}]} for i in range(60)]

    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in chats("a")))
    pq.write_table(pa.Table.from_pylist(chats("b")), tmp_path / "b.parquet")
    (tmp_path / "d.yaml").write_text("domains:\n  a: a.jsonl\n  b: b.parquet\nmax_epochs: 4\n")
    make_plan(tmp_path / "d.yaml", tmp_path / "plan", PlanConfig(runs=4, tokens_per_run=500))
    (tmp_path / "m.json").write_text(json.dumps({"weights": {"a": 0.25, "b": 0.75}, "plan_dir": str(tmp_path / "plan")}))
    run_build(tmp_path / "m.json", tmp_path / "build", BuildConfig(rows=80), log=lambda *_: None)
    rows = pq.read_table(tmp_path / "build" / "data.parquet").to_pylist()
    assert sum(r["domain"] == "a" for r in rows) == 20 and sum(r["domain"] == "b" for r in rows) == 60
    assert all(r["messages"][0]["content"] == f"{r['source_id']} hello" for r in rows)
