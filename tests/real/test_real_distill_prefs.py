"""SmolLM2 as a teacher: `wb distill` through `wb serve` with a ledger whose token counts are the tokenizer's,
and `wb prefs` delta pairs (served strong side, in-process weak side) that one `wb train dpo` step trains on."""

from __future__ import annotations

import json
import math
import sqlite3

import pytest

from trainers.loop import read_metrics
from workbench.cli import main
from workbench.rundir import read_manifest

pytestmark = pytest.mark.real
QUESTIONS = [("What is 2 + 3? Reply with the number only.", "5"), ("What is 10 - 4? Reply with the number only.", "6"),
             ("What is 3 times 3? Reply with the number only.", "9")]
FACTS = [f"Write one short sentence about {topic}." for topic in ("cats", "the moon", "rain", "bread", "trees",
                                                                  "the sea")]


def _jsonl(path, rows: list[dict]):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_distill_ledger_counts_are_the_tokenizers(smollm2_server, smollm2_tokenizer, tmp_path):
    url, _ = smollm2_server
    src = _jsonl(tmp_path / "q.jsonl", [{"prompt": q, "answer": a} for q, a in QUESTIONS])
    out = tmp_path / "distill"
    assert main(["distill", str(src), "--output", str(out), "--model", "smollm2", "--base-url", url,
                 "--answer-field", "answer", "--verify", "math", "--temperature", "0", "--max-tokens", "24",
                 "--progress-seconds", "0"]) == 0
    with sqlite3.connect(out / "ledger.sqlite") as db:
        units = db.execute("SELECT prompt_id, status, content, finish_reason, prompt_tokens, completion_tokens "
                           "FROM units ORDER BY prompt_id").fetchall()
    assert len(units) == 3 and {u[1] for u in units} <= {"ok", "truncated"}
    for _, status, content, finish, _, completion_tokens in units:
        assert content and not any(t in content for t in ("<|im_start|>", "<|im_end|>"))
        counted = len(smollm2_tokenizer.encode(content, add_special_tokens=False))
        # a stopped answer was ended by <|im_end|>, which the server counts (and bills) too
        assert completion_tokens == counted + (1 if finish == "stop" else 0)
        assert (status == "truncated") == (finish == "length")
    prompt_counts = sorted(len(smollm2_tokenizer.apply_chat_template([{"role": "user", "content": q}],
                                                                     add_generation_prompt=True, tokenize=True,
                                                                     return_dict=False)) for q, _ in QUESTIONS)
    assert sorted(u[4] for u in units) == prompt_counts
    manifest = read_manifest(out)
    assert manifest["usage"]["prefill_tokens"] == sum(prompt_counts)
    assert manifest["usage"]["sampled_tokens"] == sum(u[5] for u in units)


def test_dpo_step_on_prefs_pairs_starts_at_ln2(smollm2_dir, smollm2_server, tmp_path):
    url, _ = smollm2_server
    src = _jsonl(tmp_path / "facts.jsonl", [{"prompt": f} for f in FACTS])
    pairs = tmp_path / "prefs"
    assert main(["prefs", str(src), "--output", str(pairs), "--strong-model", "smollm2", "--strong-base-url", url,
                 "--weak-model", str(smollm2_dir), "--weak-backend", "hf", "--threads", "1", "--temperature", "0.7",
                 "--max-tokens", "64", "--max-concurrency", "6", "--progress-seconds", "0"]) == 0
    prefs = read_manifest(pairs)
    kept = prefs["pair_stats"]["kept"]
    assert kept >= 2 and prefs["usage"]["requests"] == 12  # sampled answers that differ and end in time
    assert prefs["runtime"] == [{"model": str(smollm2_dir), "dtype": "float32", "threads": 1, "device": "cpu"}]
    out = tmp_path / "dpo"
    assert main(["train", "dpo", "--model", str(smollm2_dir), "--data", str(pairs), "--output", str(out),
                 "--max-steps", "1", "--batch-size", "2", "--lr", "1e-5", "--max-length", "192", "--save-every", "0",
                 "--threads", "1"]) == 0
    (step,) = read_metrics(out)
    # policy == reference before the first update, so the sigmoid loss is exactly -log(sigmoid(0)) = ln 2
    assert step["step"] == 1 and step["loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert math.isfinite(step["grad_norm"]) and step["grad_norm"] > 0
    manifest = read_manifest(out)
    assert manifest["runtime"] == [{"model": str(smollm2_dir), "dtype": "float32", "threads": 1, "device": "cpu"}]
