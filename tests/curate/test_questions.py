"""The question side: prompts are decontaminated and deduplicated with curate/ before any request."""

from __future__ import annotations

import json

import polars as pl

from workbench.cli import main
from workbench.workspace import bundled_data_dir


def test_benchmark_and_duplicate_questions_are_dropped_before_generation(tmp_path, mock, capsys):
    leaked = json.loads((bundled_data_dir() / "gsm8k" / "test.jsonl").read_text().splitlines()[5])["question"]
    rewrapped = "\n".join(" ".join(leaked.split()[i:i + 6]) for i in range(0, len(leaked.split()), 6))
    story = ("A farmer has twelve goats and buys seven more at the market on Sunday morning, then sells three of "
             "them to a neighbour who wants milk for the whole winter season. How many goats are left now?")
    near = story.replace("left now?", "left today?")  # one changed word at the end: Jaccard 0.95
    questions = [rewrapped, story, story, near, "What is 2 + 2?", "Name three primes larger than ten."]
    src = tmp_path / "q.jsonl"
    src.write_text("".join(json.dumps({"id": f"q{i}", "question": q}) + "\n" for i, q in enumerate(questions)))
    out = tmp_path / "run"
    assert main(["distill", str(src), "--output", str(out), "--model", "mock", "--base-url", mock.url,
                 "--prompt-field", "question", "--decontam", "gsm8k", "--dedup-prompts",
                 "--progress-seconds", "0"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows_in"] == 6
    assert manifest["dropped"] == {"contaminated:gsm8k_test": 1, "exact_duplicate": 1, "near_duplicate": 1}
    kept = pl.read_parquet(out / "data.parquet")["prompt_id"].to_list()
    assert sorted(kept) == ["q1", "q4", "q5"]
    assert manifest["usage"]["requests"] == 3  # nothing was generated for the dropped questions
