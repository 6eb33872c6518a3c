"""`wb prefs` end to end against two `wb serve` tiny models, the stronger one trained more on GSM8K."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq

from workbench.cli import main
from workbench.io import open_source
from workbench.schemas import validate_tables
from workbench.workspace import bundled_data_dir

REASONS = {"failed", "truncated", "empty", "identical_text", "verifier_inverted"}


def test_stronger_model_was_trained_further(tiny_pair):
    weak, strong = tiny_pair["weak"][1], tiny_pair["strong"][1]
    assert np.mean(weak[-5:]) < np.mean(weak[:5])
    assert np.mean(strong[-10:]) < np.mean(weak[-5:])  # the strong model continues below where the weak stopped


def test_delta_pairs_from_two_served_tiny_models(tmp_path, tiny_servers, tiny_tokenizer, tiny_pair, capsys):
    src = tmp_path / "gsm8k.jsonl"
    lines = (bundled_data_dir() / "gsm8k" / "test.jsonl").read_text().splitlines()[:8]
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    argv = ["prefs", str(src), "--output", str(out), "--prompt-field", "question", "--answer-field", "answer",
            "--verify", "math", "--strong-model", "strong", "--strong-base-url", tiny_servers["strong"],
            "--weak-model", "weak", "--weak-base-url", tiny_servers["weak"], "--max-tokens", "96", "--max-concurrency", "1",
            "--temperature", "0.7", "--seed", "1", "--progress-seconds", "0"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    stats = manifest["pair_stats"]
    assert f"{stats['kept']} of 8 pairs kept" in printed
    kept, removed = pq.read_table(out / "data.parquet"), pq.read_table(out / "removed.parquet")
    assert kept.num_rows + removed.num_rows == 8 and kept.num_rows == stats["kept"] > 0
    assert set(removed.column("reason").to_pylist()) <= REASONS
    assert sum(stats["dropped"].values()) == removed.num_rows
    assert manifest["usage"]["requests"] == 16 and manifest["usage"]["sampled_tokens"] > 0
    assert set(manifest["models"]) == {"strong", "weak"}
    for row in kept.to_pylist():
        swapped = row["verdict"] == "swapped"
        assert (row["chosen_model"], row["rejected_model"]) == (("weak", "strong") if swapped else ("strong", "weak"))
        assert row["chosen"][0]["content"] != row["rejected"][0]["content"]
        assert row["chosen_status"] == row["rejected_status"] == "ok"
        assert row["verdict"] in {"chosen_correct", "both_correct", "both_wrong", "swapped"}
        # What a DPO trainer does with the row: render prompt + each side through the chat template.
        for side in ("chosen", "rejected"):
            enc = tiny_tokenizer.apply_chat_template(row["prompt"] + row[side], return_dict=True,
                                                     return_assistant_tokens_mask=True)
            prompt_ids = tiny_tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True,
                                                            return_dict=True)["input_ids"]
            assert enc["input_ids"][:len(prompt_ids)] == prompt_ids and sum(enc["assistant_masks"]) > 0
    assert validate_tables(open_source(out).iter_rows_with_file(), "preference") == kept.num_rows
    from datasets import load_dataset

    ds = load_dataset("parquet", data_files=str(out / "data.parquet"), split="train")
    assert set(ds.column_names) >= {"prompt", "chosen", "rejected", "chosen_model", "rejected_model", "source",
                                    "strategy", "chosen_score", "rejected_score", "chosen_tokens"}

    # `wb train dpo` accepts the pairs as they are: step 1 starts at ln 2 (policy == reference).
    dpo_out = tmp_path / "dpo"
    assert main(["train", "dpo", "--model", str(tiny_pair["weak"][0]), "--data", str(out), "--output", str(dpo_out),
                 "--max-steps", "2", "--batch-size", "2", "--log-every", "1"]) == 0
    metrics = [json.loads(line) for line in (dpo_out / "metrics.jsonl").read_text().splitlines()]
    first = next(m for m in metrics if "loss" in m)
    assert abs(first["loss"] - np.log(2)) < 1e-4
    assert (dpo_out / "model" / "config.json").exists()

    # Re-running resumes: nothing is generated again and the product is the same.
    assert main(argv) == 0
    again = json.loads((out / "manifest.json").read_text())
    assert again["pair_stats"] == stats and pq.read_table(out / "data.parquet").equals(kept)
