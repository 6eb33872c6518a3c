"""`--max-cost` on a trainer: the run stops at a checkpoint once its priced tokens reach the cap, and a re-run
with a higher cap continues from there to the same end as a run that was never capped."""

from __future__ import annotations

import json

import pytest

from trainers.loop import read_metrics
from workbench.cli import main
from workbench.rundir import read_manifest
from workbench.runfiles import run_state
from workbench.workspace import bundled_data_dir


def test_the_cap_stops_training_at_a_checkpoint_and_a_higher_cap_continues(tiny_model_dir, tmp_path, capsys):
    rows = [json.loads(line) for line in open(bundled_data_dir() / "gsm8k" / "train.jsonl")][:8]
    data = tmp_path / "short.jsonl"
    data.write_text("".join(json.dumps({"prompt": r["question"], "completion": r["answer"].split("\n")[-1]}) + "\n"
                            for r in rows))
    out = tmp_path / "run"
    flags = ["train", "sft", "--model", str(tiny_model_dir), "--data", str(data), "--output", str(out),
             "--max-steps", "6", "--batch-size", "2", "--eval-fraction", "0", "--save-every", "0",
             "--price-trained", "1000000"]  # $1 a trained token: the cap counts tokens
    assert main([*flags, "--max-cost", "0"]) == 1  # nothing is spent before a step, so one step runs
    err = capsys.readouterr().err
    assert "stopped at the cost cap after step 1 of 6" in err and "raise --max-cost" in err
    first = read_metrics(out)
    assert [m["step"] for m in first] == [1] and run_state(out).state == "failed"
    per_step = first[0]["trained_tokens"]
    assert (out / "checkpoints" / "step-000001").is_dir()
    # a higher cap: it resumes at step 2 and stops after the first step whose total reaches the cap
    cap = 2.5 * per_step
    assert main([*flags, "--max-cost", str(cap)]) == 1
    second = read_metrics(out)
    assert second[0] == first[0] and 2 < len(second) < 6
    assert second[-2]["trained_tokens_total"] < cap <= second[-1]["trained_tokens_total"]
    assert main([*flags, "--max-cost", "1e9"]) == 0
    manifest = read_manifest(out)
    assert [m["step"] for m in read_metrics(out)] == list(range(1, 7))
    assert manifest["usage"]["cost_usd"] == pytest.approx(manifest["usage"]["trained_tokens"])


def test_a_cap_without_a_price_is_refused(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"prompt": "1+1?", "completion": "2"}) + "\n")
    assert main(["train", "sft", "--model", str(tiny_model_dir), "--data", str(data), "--output",
                 str(tmp_path / "run"), "--max-steps", "2", "--max-cost", "1"]) == 2
    assert "--max-cost 1 needs --price-trained" in capsys.readouterr().err
