"""Options and inputs that used to pass silently or end in an internal error: each is one clear line."""

from __future__ import annotations

import pytest

from workbench.cli import main
from workbench.workspace import bundled_data_dir

GSM8K = str(bundled_data_dir() / "gsm8k" / "test.jsonl")


def test_validate_reads_question_answer_data_with_prompt_field(capsys):
    assert main(["validate", GSM8K]) == 2
    assert "pass --prompt-field question" in capsys.readouterr().err
    assert main(["validate", GSM8K, "--prompt-field", "question"]) == 0
    assert "1,319 rows, all valid RL prompts" in capsys.readouterr().out
    assert main(["validate", GSM8K, "--prompt-field", "question", "--completion-field", "answer"]) == 0
    assert "all valid SFT messages" in capsys.readouterr().out
    assert main(["validate", GSM8K, "--prompt-field", "nope"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["dedup", GSM8K, "--max-cluster-size", "0", "--output", "{tmp}/d"], "--max-cluster-size 0: must be at least 1"),
    (["distill", GSM8K, "--prompt-field", "question", "--model", "m", "--base-url", "http://127.0.0.1:9/v1",
      "--limit", "-1", "--output", "{tmp}/x"], "--limit -1: must be at least 1"),
    (["train", "sft", "--model", "{model}", "--data", GSM8K, "--prompt-field", "question", "--completion-field",
      "answer", "--epochs", "0", "--output", "{tmp}/t"], "--epochs 0.0: must be greater than 0"),
    (["distill", GSM8K, "--prompt-field", "question", "--model", "m", "--base-url", "http://127.0.0.1:9/v1",
      "--max-concurrency", "0", "--output", "{tmp}/x"], "--max-concurrency 0: must be at least 1"),
    (["train", "grpo", "--model", "{model}", "--prompts", GSM8K, "--output", "{tmp}/g"], "(pass --prompt-field question)"),
])
def test_bad_options_are_one_line_errors(argv, message, tmp_path, tiny_model_dir, capsys):
    argv = [a.format(tmp=tmp_path, model=tiny_model_dir) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not any(tmp_path.iterdir())
