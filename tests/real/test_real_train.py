"""SmolLM2 in the trainers: the SFT loss mask over its ChatML template (answer and <|im_end|> only), two SFT
steps, and one GRPO step with the math reward (the policy samples in-process)."""

from __future__ import annotations

import json
import math

import pytest

from trainers.loop import read_metrics
from trainers.render import render_sft
from workbench.cli import main
from workbench.rundir import read_manifest

pytestmark = pytest.mark.real
ROWS = [("What is 2 + 2?", "2 + 2 = 4. The answer is 4."), ("Name a primary colour.", "Red is a primary colour.")]


def _jsonl(path, rows: list[dict]):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_sft_mask_covers_the_answer_and_eos_only(smollm2_tokenizer):
    tok = smollm2_tokenizer
    for question, answer in ROWS:
        row = {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}
        ex = render_sft(tok, row, "row")
        trained = ex.ids[ex.mask].tolist()
        assert trained == tok.encode(answer, add_special_tokens=False) + [tok.convert_tokens_to_ids("<|im_end|>")]
        prompt = tok.apply_chat_template(row["messages"][:1], add_generation_prompt=True, tokenize=True,
                                         return_dict=False)
        assert not ex.mask[:len(prompt)].any() and ex.ids[:len(prompt)].tolist() == list(prompt)
        assert int(ex.mask.sum()) == len(trained) and len(ex.ids) > len(prompt) + len(trained) - 1


def test_sft_steps_lower_the_loss(smollm2_dir, tmp_path):
    data = _jsonl(tmp_path / "sft.jsonl", [{"messages": [{"role": "user", "content": q},
                                                        {"role": "assistant", "content": a}]} for q, a in ROWS])
    out = tmp_path / "sft"
    assert main(["train", "sft", "--model", str(smollm2_dir), "--data", str(data), "--output", str(out),
                 "--max-steps", "2", "--batch-size", "2", "--lr", "1e-4", "--schedule", "constant",
                 "--eval-fraction", "0", "--save-every", "0", "--threads", "1", "--dtype", "float32"]) == 0
    losses = [m["loss"] for m in read_metrics(out)]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses) and losses[1] < losses[0]
    manifest = read_manifest(out)
    assert manifest["config"]["dtype"] == "float32" and manifest["config"]["threads"] == 1
    assert manifest["runtime"] == [{"model": str(smollm2_dir), "dtype": "float32", "threads": 1, "device": "cpu"}]


def test_grpo_step_with_the_math_reward(smollm2_dir, tmp_path):
    prompts = _jsonl(tmp_path / "math.jsonl", [{"prompt": "What is 2 + 3? Put the answer in \\boxed{}.", "answer": "5"},
                                                {"prompt": "What is 4 + 4? Put the answer in \\boxed{}.", "answer": "8"}])
    out = tmp_path / "grpo"
    assert main(["train", "grpo", "--model", str(smollm2_dir), "--prompts", str(prompts), "--output", str(out),
                 "--reward", "math", "--max-steps", "1", "--prompts-per-step", "2", "--num-generations", "4",
                 "--max-new-tokens", "24", "--batch-size", "8", "--max-length", "192", "--save-every", "0",
                 "--threads", "1"]) == 0
    (step,) = read_metrics(out)
    assert step["step"] == 1 and math.isfinite(step["loss"])
    assert 0.0 <= step["rewards/math/mean"] <= 1.0 and 0 < step["completions/mean_length"] <= 24
    manifest = read_manifest(out)
    assert manifest["steps"] == 1 and manifest["usage"]["sampled_tokens"] > 0
    assert manifest["runtime"] == [{"model": str(smollm2_dir), "dtype": "float32", "threads": 1, "device": "cpu"}]
