"""`--eval-benchmark`: held-out accuracy logged to metrics.jsonl before, during and after training, on the
toy sorting task (a random model never stops; a trained one does, and starts getting answers right)."""

from __future__ import annotations

import pytest

from trainers.loop import read_metrics
from workbench.cli import main


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from demo.toytask import save_toy_model, write_task

    root = tmp_path_factory.mktemp("toy")
    paths = write_task(root, train=600, heldout=24, other=10, duplicates=0, loops=0, refusals=0, leaked=0, seed=0)
    paths["raw"] = paths["sort_desc"]
    return paths, save_toy_model(root / "model")


def test_sft_logs_benchmark_accuracy_every_n_steps(toy, tmp_path):
    paths, model = toy
    out = tmp_path / "sft"
    assert main(["train", "sft", "--model", str(model), "--data", str(paths["raw"]), "--prompt-field", "question",
                 "--completion-field", "answer", "--max-steps", "40", "--batch-size", "32", "--lr", "3e-3",
                 "--max-length", "64", "--save-every", "0", "--eval-fraction", "0", "--output", str(out),
                 "--eval-benchmark", str(paths["heldout"]), "--eval-benchmark-every", "20", "--eval-verify", "exact",
                 "--eval-prompt-field", "question", "--eval-max-tokens", "16"]) == 0
    records = read_metrics(out)
    scored = {r["step"]: r for r in records if "eval/heldout/accuracy" in r}
    assert sorted(scored) == [0, 20, 40]
    start, end = scored[0], scored[40]
    assert start["eval/heldout/accuracy"] == 0.0 and start["eval/heldout/truncation_rate"] == 1.0
    assert end["eval/heldout/truncation_rate"] < 0.5  # it learned to stop after the answer
    assert end["eval/heldout/ci95_low"] <= end["eval/heldout/accuracy"] <= end["eval/heldout/ci95_high"]
    assert [r["step"] for r in records] == list(range(41))


def test_eval_benchmark_errors_are_one_line(toy, tmp_path, capsys):
    paths, model = toy
    assert main(["train", "sft", "--model", str(model), "--data", str(paths["raw"]), "--prompt-field", "question",
                 "--completion-field", "answer", "--max-steps", "1", "--output", str(tmp_path / "x"),
                 "--eval-benchmark", str(paths["heldout"])]) == 2
    assert "no column 'prompt'" in capsys.readouterr().err
