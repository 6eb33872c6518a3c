"""Seams between stages for the trainers: GRPO on a prompts file that also has other columns (a
`completion`, say) when `--prompt-field` names the prompt column; the extra columns reach rewards."""

from __future__ import annotations

import json

from trainers import GRPOConfig, train_grpo


def test_grpo_takes_prompt_rows_with_extra_columns(tmp_path, tiny_model_dir, monkeypatch):
    (tmp_path / "seam_rewards.py").write_text(
        "def uses_completion(completions, completion, **_):\n"
        "    return [float(len(c) > 0 and r.startswith('a')) for c, r in zip(completions, completion)]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    rows = [{"question": f"q{i}", "completion": f"a{i}", "answer": str(i)} for i in range(4)]
    data = tmp_path / "p.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = train_grpo(GRPOConfig(model=str(tiny_model_dir), data=str(data), output=str(tmp_path / "rl"),
                                   prompt_field="question", reward=["seam_rewards:uses_completion"], max_steps=1,
                                   num_generations=2, prompts_per_step=2, max_new_tokens=4, save_every=0,
                                   max_length=64), log=lambda *_: None)
    assert result["rows_in"] == 4 and result["final"]["reward"] > 0
