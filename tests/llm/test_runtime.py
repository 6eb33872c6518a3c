"""The threads and dtype policy (llm/runtime.py): what `auto` resolves to, the default thread count, bad
values refused with the flag named, and each loaded model's dtype and threads in a run's manifest."""

from __future__ import annotations

import pytest
import torch

from llm.runtime import apply_threads, default_threads, loaded_models, resolve_dtype
from workbench.cli import main
from workbench.errors import InputError
from workbench.rundir import read_manifest


def test_auto_is_float32_on_cpu_and_names_pass_through():
    assert resolve_dtype("auto", "cpu") == "float32"
    assert resolve_dtype("bfloat16", "cpu") == "bfloat16" and resolve_dtype("float32", "cuda") == "float32"
    with pytest.raises(InputError, match="--dtype 'bf16': must be one of auto, float32, bfloat16, float16"):
        resolve_dtype("bf16")


def test_default_threads_leave_a_core_or_follow_omp(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert default_threads() == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    assert default_threads() == 15
    before = torch.get_num_threads()
    try:
        assert apply_threads(2) == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    with pytest.raises(InputError, match="--threads -1"):
        apply_threads(-1)


def test_eval_with_hf_records_the_resolved_dtype_and_threads(tmp_path, tiny_model_dir):
    before = torch.get_num_threads()
    out = tmp_path / "bf16"
    try:
        assert main(["eval", "--model", str(tiny_model_dir), "--benchmark", "gsm8k", "--limit", "2", "--max-tokens",
                     "4", "--progress-seconds", "0", "--dtype", "bfloat16", "--threads", "1", "--output", str(out)]) == 0
    finally:
        torch.set_num_threads(before)
    manifest = read_manifest(out)
    assert manifest["config"]["dtype"] == "bfloat16" and manifest["config"]["threads"] == 1
    assert manifest["runtime"] == [{"model": str(tiny_model_dir), "dtype": "bfloat16", "threads": 1, "device": "cpu"}]
    assert loaded_models("some/other/model") == []


def test_bad_dtype_and_threads_flags_are_one_line_errors(tmp_path, tiny_model_dir, capsys):
    with pytest.raises(SystemExit) as exit_:  # argparse refuses a value outside --dtype's choices
        main(["train", "sft", "--model", str(tiny_model_dir), "--data", "x.jsonl", "--output", str(tmp_path / "r"),
              "--dtype", "fp8"])
    assert exit_.value.code == 2
    assert "invalid choice: 'fp8' (choose from 'auto', 'float32', 'bfloat16', 'float16')" in capsys.readouterr().err
    assert main(["serve", str(tiny_model_dir), "--threads", "-2", "--port", "1"]) == 2
    assert "--threads -2: must be 0 (automatic) or more" in capsys.readouterr().err


def test_a_bf16_checkpoint_is_served_and_trained_in_the_same_dtype(tmp_path, tiny_model_dir):
    """The issue this policy fixes: a bf16 checkpoint was served in bf16 but trained in fp32 on CPU."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llm.local_engine import LocalEngine
    from trainers.client import ClientConfig, TrainingClient

    bf16 = tmp_path / "bf16"
    AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16).save_pretrained(bf16)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(bf16)
    before = torch.get_num_threads()
    try:
        served = LocalEngine(bf16, threads=1)
        trained = TrainingClient.load(ClientConfig(model=str(bf16), threads=1))
        assert served.model.dtype == trained.model.dtype == torch.float32 and served.dtype == "float32"
        assert LocalEngine(bf16, dtype="bfloat16", threads=1).model.dtype == torch.bfloat16
    finally:
        torch.set_num_threads(before)
