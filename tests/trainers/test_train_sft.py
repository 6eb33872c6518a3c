"""`wb train sft` end to end on the tiny model: learning, outputs, resume, layouts and errors."""

from __future__ import annotations

import json
import shutil

import pytest

from trainers.loop import read_metrics
from workbench.cli import main
from workbench.errors import InputError
from workbench.rundir import read_manifest
from workbench.workspace import bundled_data_dir


@pytest.fixture(scope="module")
def gsm8k_sft(tmp_path_factory):
    """The first 16 bundled GSM8K rows as SFT data (prompt/completion and messages forms)."""
    rows = [json.loads(line) for line in open(bundled_data_dir() / "gsm8k" / "train.jsonl")][:16]
    d = tmp_path_factory.mktemp("sft-data")
    (d / "short.jsonl").write_text("".join(
        json.dumps({"prompt": r["question"], "completion": r["answer"].split("\n")[-1]}) + "\n" for r in rows[:8]))
    (d / "messages.jsonl").write_text("".join(json.dumps({"id": str(i), "messages": [
        {"role": "user", "content": r["question"]}, {"role": "assistant", "content": r["answer"]}]}) + "\n"
        for i, r in enumerate(rows)))
    return d


def _train(model, data, out, *flags):
    argv = ["train", "sft", "--model", str(model), "--data", str(data), "--output", str(out), *map(str, flags)]
    assert main(argv) == 0


def test_sft_overfits_a_small_set_and_writes_a_loadable_model(tiny_model_dir, gsm8k_sft, tmp_path):
    out = tmp_path / "run"
    _train(tiny_model_dir, gsm8k_sft / "short.jsonl", out, "--max-steps", 40, "--lr", 1e-2,
           "--schedule", "constant", "--eval-fraction", 0, "--save-every", 0)
    metrics = read_metrics(out)
    assert [m["step"] for m in metrics] == list(range(1, 41))
    assert metrics[-1]["loss"] < 0.1 * metrics[0]["loss"]
    assert {"loss", "lr", "grad_norm", "tokens_per_s", "trained_tokens", "trained_tokens_total"} <= set(metrics[0])
    manifest = read_manifest(out)
    assert manifest["stage"] == "train-sft" and manifest["rows_out"] == 8
    assert manifest["usage"]["trained_tokens"] == metrics[-1]["trained_tokens_total"] > 0
    assert manifest["config"]["lr"] == 1e-2

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out / "model")
    tok = AutoTokenizer.from_pretrained(out / "model")
    assert model.config.vocab_size == len(tok) and tok.chat_template


def test_rerun_resumes_with_the_same_loss_trajectory(tiny_model_dir, gsm8k_sft, tmp_path):
    flags = ["--max-steps", 6, "--batch-size", 3, "--grad-accum", 2, "--save-every", 2, "--keep-checkpoints", 5,
             "--lr", 5e-3, "--warmup-steps", 2, "--eval-every", 3]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    _train(tiny_model_dir, gsm8k_sft / "messages.jsonl", whole, *flags)
    _train(tiny_model_dir, gsm8k_sft / "messages.jsonl", broken, *flags)
    # simulate a crash during step 5: checkpoints after step 4, the final model and the manifest never
    # happened, and metrics.jsonl holds a line past the last checkpoint that must be redone
    for name in ("step-000004", "step-000006"):
        shutil.rmtree(broken / "checkpoints" / name)
    shutil.rmtree(broken / "model")
    (broken / "manifest.json").unlink()
    (broken / ".run-incomplete").write_text("{}")
    lines = (broken / "metrics.jsonl").read_text().splitlines()
    (broken / "metrics.jsonl").write_text("\n".join(lines[:3]) + "\n")
    _train(tiny_model_dir, gsm8k_sft / "messages.jsonl", broken, *flags)
    a, b = read_metrics(whole), read_metrics(broken)
    assert [m["step"] for m in b] == list(range(1, 7))
    for key in ("loss", "grad_norm", "lr", "trained_tokens_total"):
        assert [m[key] for m in a] == pytest.approx([m[key] for m in b], abs=1e-6), key
    assert a[2]["eval_loss"] == pytest.approx(b[2]["eval_loss"], abs=1e-6)
    assert read_manifest(broken)["status"] == "complete"


def test_every_layout_gives_the_same_first_step(tiny_model_dir, gsm8k_sft, tmp_path):
    """Every layout sees the same examples at step 1 (packing only regroups them), so step-1 losses agree."""
    common = ["--max-steps", 1, "--batch-size", 16, "--eval-fraction", 0, "--max-length", 512, "--save-every", 0]
    first = {}
    for layout in ("padding_free", "padded", "packed"):
        _train(tiny_model_dir, gsm8k_sft / "messages.jsonl", tmp_path / layout, *common, "--layout", layout)
        first[layout] = read_metrics(tmp_path / layout)[0]
    for layout in ("padded", "packed"):
        assert first[layout]["loss"] == pytest.approx(first["padding_free"]["loss"], abs=1e-5)
        assert first[layout]["grad_norm"] == pytest.approx(first["padding_free"]["grad_norm"], rel=1e-4)
        assert first[layout]["trained_tokens"] == first["padding_free"]["trained_tokens"]


def test_lora_sft_saves_a_merged_model_and_the_adapter(tiny_model_dir, gsm8k_sft, tmp_path):
    out = tmp_path / "lora"
    _train(tiny_model_dir, gsm8k_sft / "short.jsonl", out, "--max-steps", 3, "--lora-r", 4, "--lr", 1e-2,
           "--save-every", 0)
    assert (out / "model" / "adapter" / "adapter_config.json").exists()
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out / "model")
    assert not any("lora" in n for n, _ in model.named_parameters())


def test_bad_inputs_get_one_line_errors(tiny_model_dir, gsm8k_sft, tmp_path, capsys):
    missing = tmp_path / "no-such-model"
    assert main(["train", "sft", "--model", str(missing), "--data", str(gsm8k_sft / "short.jsonl"),
                 "--output", str(tmp_path / "o")]) == 2
    assert f"{missing}: model path does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    good = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    empty.write_text(json.dumps(good) + "\n" + json.dumps({"messages": []}) + "\n")
    assert main(["train", "sft", "--model", str(tiny_model_dir), "--data", str(empty),
                 "--output", str(tmp_path / "o2")]) == 2
    assert 'empty.jsonl: row 2: "messages" must hold at least one message' in capsys.readouterr().err
    assert main(["train", "sft", "--model", str(tiny_model_dir), "--output", str(tmp_path / "o3")]) == 2
    assert "--data is required" in capsys.readouterr().err


def test_two_ranks_under_torchrun_match_one_process(tiny_model_dir, gsm8k_sft, tmp_path):
    """torchrun with 2 CPU ranks x batch 2 follows the same trajectory as 1 process x batch 4."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    flags = ["--max-steps", 3, "--lr", 1e-2, "--eval-fraction", 0, "--save-every", 0]
    _train(tiny_model_dir, gsm8k_sft / "short.jsonl", tmp_path / "one", *flags, "--batch-size", 4)
    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
           "-m", "workbench.cli", "train", "sft", "--model", str(tiny_model_dir), "--data",
           str(gsm8k_sft / "short.jsonl"), "--output", str(tmp_path / "two"), *map(str, flags), "--batch-size", "2"]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    one, two = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "two")
    for key in ("loss", "grad_norm", "trained_tokens"):  # all-reduce sums in another order: float noise only
        assert [m[key] for m in one] == pytest.approx([m[key] for m in two], rel=1e-4), key
    assert read_manifest(tmp_path / "two")["status"] == "complete"


def test_bundled_gsm8k_trains_from_a_config_file_with_flag_overrides(tiny_model_dir, tmp_path):
    config = tmp_path / "sft.yaml"
    config.write_text("prompt_field: question\ncompletion_field: answer\nmax_steps: 5\nbatch_size: 4\n"
                      "lr: 0.003\nsave_every: 0\nmax_eval_rows: 8\n")
    out = tmp_path / "gsm8k"
    _train(tiny_model_dir, bundled_data_dir() / "gsm8k" / "test.jsonl", out, "--config", config, "--max-steps", 2)
    metrics = read_metrics(out)
    manifest = read_manifest(out)
    assert len(metrics) == 2 and "eval_loss" in metrics[-1]
    assert manifest["rows_in"] == manifest["rows_out"] == 1319
    assert manifest["config"]["max_steps"] == 2 and manifest["config"]["prompt_field"] == "question"
    assert manifest["inputs"][0]["fingerprint"]


def test_sft_on_a_distill_run_trains_on_its_sft_parquet(tiny_model_dir, tmp_path):
    """A distill run's data.parquet holds raw units; `--data RUN` must read the rendered sft.parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    run = tmp_path / "distill"
    run.mkdir()
    pq.write_table(pa.table({"id": ["0-0", "0-1", "1-0"], "prompt_id": ["0", "0", "1"], "content": ["a", None, "b"],
                             "status": ["ok", "failed", "ok"]}), run / "data.parquet")
    msgs = [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"answer {i}"}] for i in (0, 1)]
    pq.write_table(pa.table({"id": ["0-0", "1-0"], "messages": msgs}), run / "sft.parquet")
    (run / "manifest.json").write_text(json.dumps({"stage": "distill", "status": "complete"}))
    out = tmp_path / "sft"
    assert main(["train", "sft", "--model", str(tiny_model_dir), "--data", str(run), "--prompt-field", "question",
                 "--max-steps", "1", "--eval-fraction", "0", "--output", str(out)]) == 0
    manifest = read_manifest(out)
    assert manifest["rows_in"] == 2 and manifest["inputs"][0]["path"].endswith("sft.parquet")


def test_a_diverging_loss_stops_training_and_fails_the_run(tiny_model_dir, gsm8k_sft, tmp_path, capsys):
    """An absurd learning rate makes the loss non-finite within a few steps: the run must stop with a
    clear error and stay unfinished (failed), never be marked complete with a NaN model."""
    from workbench.runfiles import INCOMPLETE

    out = tmp_path / "nan"
    argv = ["train", "sft", "--model", str(tiny_model_dir), "--data", str(gsm8k_sft / "messages.jsonl"),
            "--output", str(out), "--max-steps", "6", "--batch-size", "4", "--lr", "1e30", "--save-every", "0"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "the loss became nan" in err or "the loss became inf" in err, err
    assert "Traceback" not in err and not (out / "manifest.json").exists() and not (out / "model").exists()
    progress = json.loads((out / "progress.json").read_text())
    assert (out / INCOMPLETE).exists() and progress["state"] == "failed" and "the loss became" in progress["error"]
    with pytest.raises(InputError, match="this run failed"):
        read_manifest(out)
