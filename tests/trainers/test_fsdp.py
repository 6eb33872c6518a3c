"""FSDP2 (`--fsdp`) under torchrun on CPU (gloo): 2 sharded ranks follow 1 process to 1e-5 in SFT and
DPO, resume from a checkpoint gathered on every rank, and write the full model."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trainers.loop import read_metrics
from workbench.cli import main
from workbench.rundir import read_manifest

ROOT = Path(__file__).resolve().parents[2]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(*argv: str) -> None:
    """Two CPU ranks on loopback; one retry (a launch here rarely ends in ChildFailedError after success)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for _ in range(2):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
               "127.0.0.1", "--master-port", str(_port()), "-m", "workbench.cli", *argv]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        if proc.returncode == 0:
            return
    raise AssertionError(proc.stderr[-3000:])


def _weights(model_dir: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(model_dir / "model.safetensors"))


def _close(one: Path, two: Path) -> None:
    a, b = _weights(one / "model"), _weights(two / "model")
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], atol=1e-5, rtol=0, err_msg=name)


@pytest.fixture(scope="module")
def sft_rows(tmp_path_factory):
    from workbench.workspace import bundled_data_dir as data_dir

    rows = [json.loads(line) for line in open(data_dir() / "gsm8k" / "train.jsonl")][:8]
    path = tmp_path_factory.mktemp("fsdp") / "sft.jsonl"
    path.write_text("".join(json.dumps({"prompt": r["question"], "completion": r["answer"].split("\n")[-1]}) + "\n"
                            for r in rows))
    return path


@pytest.mark.slow
def test_fsdp_sft_two_ranks_match_one_process_and_resume(tiny_model_dir, sft_rows, tmp_path):
    flags = ["--data", str(sft_rows), "--model", str(tiny_model_dir), "--max-steps", "3", "--lr", "1e-3",
             "--eval-fraction", "0", "--schedule", "constant"]
    assert main(["train", "sft", *flags, "--output", str(tmp_path / "one"), "--batch-size", "4",
                 "--save-every", "0"]) == 0
    # stop after 2 steps with a checkpoint (gathered from both ranks), then resume to 3
    _torchrun("train", "sft", *flags, "--output", str(tmp_path / "two"), "--batch-size", "2", "--fsdp",
              "--save-every", "2", "--max-steps", "2")
    assert (tmp_path / "two" / "checkpoints" / "step-000002" / "state.pt").exists()
    _torchrun("train", "sft", *flags, "--output", str(tmp_path / "two"), "--batch-size", "2", "--fsdp",
              "--save-every", "2")
    one, two = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "two")
    assert [m["step"] for m in two] == [1, 2, 3]
    for key in ("loss", "grad_norm"):
        assert [m[key] for m in one] == pytest.approx([m[key] for m in two], rel=1e-4, abs=1e-6), key
    _close(tmp_path / "one", tmp_path / "two")
    assert read_manifest(tmp_path / "two")["status"] == "complete"
    start, end = _weights(Path(tiny_model_dir)), _weights(tmp_path / "two" / "model")
    assert max(float(np.abs(end[k] - start[k]).max()) for k in start) > 1e-3  # it trained


@pytest.mark.slow
def test_fsdp_dpo_two_ranks_match_one_process(tiny_model_dir, tmp_path):
    rng = np.random.default_rng(0)
    words = ["apple", "river", "stone", "cloud", "green", "seven", "house", "light"]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"id": str(i), "prompt": " ".join(rng.choice(words, 5)) + "?",
                                         "chosen": "yes", "rejected": "no"}) + "\n" for i in range(8)))
    flags = ["--data", str(pairs), "--model", str(tiny_model_dir), "--max-steps", "3", "--lr", "1e-3",
             "--schedule", "constant", "--save-every", "0"]
    assert main(["train", "dpo", *flags, "--output", str(tmp_path / "one"), "--batch-size", "4"]) == 0
    _torchrun("train", "dpo", *flags, "--output", str(tmp_path / "two"), "--batch-size", "2", "--fsdp")
    one, two = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "two")
    for key in ("loss", "rewards/margins"):
        assert [m[key] for m in one] == pytest.approx([m[key] for m in two], rel=1e-4, abs=1e-6), key
    _close(tmp_path / "one", tmp_path / "two")
    # the online reference: a sharded copy rebuilt from the gathered starting weights
    _torchrun("train", "dpo", *flags, "--output", str(tmp_path / "online"), "--batch-size", "2", "--fsdp",
              "--no-precompute-ref")
    online = read_metrics(tmp_path / "online")
    assert [m["loss"] for m in one] == pytest.approx([m["loss"] for m in online], rel=1e-4, abs=1e-6)
    _close(tmp_path / "one", tmp_path / "online")


def test_fsdp_with_lora_is_refused(tiny_model_dir, sft_rows, tmp_path, capsys):
    assert main(["train", "sft", "--model", str(tiny_model_dir), "--data", str(sft_rows), "--output",
                 str(tmp_path / "o"), "--fsdp", "--lora-r", "4"]) == 2
    assert "--fsdp shards full fine-tuning" in capsys.readouterr().err
