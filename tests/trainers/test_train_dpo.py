"""`wb train dpo` on the tiny model: ln 2 at step 0, a growing margin, reference modes that agree."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest

from trainers.loop import read_metrics
from workbench.cli import main
from workbench.io import write_table
from workbench.rundir import read_manifest


@pytest.fixture(scope="module")
def separable_pairs(tmp_path_factory):
    """Chosen always answers "yes", rejected always "no": a preference any policy can learn."""
    rng = np.random.default_rng(0)
    words = ["apple", "river", "stone", "cloud", "green", "seven", "house", "light"]
    rows = [{"id": str(i), "prompt": " ".join(rng.choice(words, 5)) + "?", "chosen": "yes", "rejected": "no"}
            for i in range(16)]
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _dpo(model, data, out, *flags):
    argv = ["train", "dpo", "--model", str(model), "--data", str(data), "--output", str(out), *map(str, flags)]
    assert main(argv) == 0
    return read_metrics(out)


def test_loss_starts_at_ln2_and_the_margin_grows(tiny_model_dir, separable_pairs, tmp_path):
    m = _dpo(tiny_model_dir, separable_pairs, tmp_path / "run", "--max-steps", 8, "--batch-size", 8, "--lr", 1e-3,
             "--schedule", "constant", "--save-every", 0)
    assert m[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert m[0]["rewards/margins"] == pytest.approx(0.0, abs=1e-5)
    margins = [r["rewards/margins"] for r in m]
    assert all(b > a for a, b in zip(margins[1:], margins[2:], strict=False))  # rises every step after the first
    assert m[-1]["rewards/accuracies"] == 1.0 and m[-1]["loss"] < 0.5
    assert {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"} <= set(m[0])
    manifest = read_manifest(tmp_path / "run")
    assert manifest["stage"] == "train-dpo" and manifest["rows_out"] == 16
    assert (tmp_path / "run" / "ref_logps.parquet").exists() and (tmp_path / "run" / "model" / "config.json").exists()


def _same(a, b, keys=("loss", "rewards/margins", "rewards/chosen", "grad_norm"), tol=1e-4):
    for key in keys:
        assert [r[key] for r in a] == pytest.approx([r[key] for r in b], abs=tol), key


def test_precomputed_and_online_reference_agree(tiny_model_dir, separable_pairs, tmp_path):
    flags = ["--max-steps", 3, "--batch-size", 4, "--grad-accum", 2, "--lr", 1e-3, "--save-every", 0]
    pre = _dpo(tiny_model_dir, separable_pairs, tmp_path / "pre", *flags)
    online = _dpo(tiny_model_dir, separable_pairs, tmp_path / "online", *flags, "--no-precompute-ref")
    _same(pre, online)
    assert not (tmp_path / "online" / "ref_logps.parquet").exists()


def test_lora_reference_is_the_base_model_and_the_cache_is_reused(tiny_model_dir, separable_pairs, tmp_path, capsys):
    flags = ["--max-steps", 3, "--batch-size", 8, "--lr", 1e-2, "--lora-r", 4, "--save-every", 0,
             "--loss-type", "sigmoid_norm"]
    pre = _dpo(tiny_model_dir, separable_pairs, tmp_path / "pre", *flags)
    online = _dpo(tiny_model_dir, separable_pairs, tmp_path / "online", *flags, "--no-precompute-ref")
    _same(pre, online)
    assert pre[0]["loss"] == pytest.approx(math.log(2), abs=1e-5) and pre[-1]["rewards/margins"] > 0
    capsys.readouterr()
    again = _dpo(tiny_model_dir, separable_pairs, tmp_path / "again", *flags,
                 "--ref-cache", tmp_path / "pre" / "ref_logps.parquet")
    assert "reference log-probs: cached" in capsys.readouterr().out
    _same(pre, again, tol=1e-6)


@pytest.mark.parametrize("loss_type", ["ipo", "hinge", "simpo"])
def test_other_losses_learn_the_preference(tiny_model_dir, separable_pairs, tmp_path, loss_type):
    m = _dpo(tiny_model_dir, separable_pairs, tmp_path / loss_type, "--max-steps", 4, "--batch-size", 16,
             "--lr", 1e-3, "--schedule", "constant", "--save-every", 0, "--loss-type", loss_type)
    assert m[-1]["loss"] < m[0]["loss"] and m[-1]["rewards/margins"] > m[0]["rewards/margins"]


def test_preference_row_missing_rejected_fails_clearly(tiny_model_dir, tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"prompt": "a", "chosen": "b", "rejected": "c"}) + "\n"
                    + json.dumps({"prompt": "a", "chosen": "b"}) + "\n")
    assert main(["train", "dpo", "--model", str(tiny_model_dir), "--data", str(path),
                 "--output", str(tmp_path / "o")]) == 2
    assert 'bad.jsonl: row 2: "rejected" must be a string; got null' in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_rerun_resumes_dpo_from_the_checkpoint_and_the_cached_reference(tiny_model_dir, separable_pairs, tmp_path):
    import shutil

    flags = ["--max-steps", 4, "--batch-size", 4, "--lr", 1e-3, "--save-every", 2, "--keep-checkpoints", 5]
    whole = _dpo(tiny_model_dir, separable_pairs, tmp_path / "whole", *flags)
    broken = tmp_path / "broken"
    _dpo(tiny_model_dir, separable_pairs, broken, *flags)
    shutil.rmtree(broken / "checkpoints" / "step-000004")
    shutil.rmtree(broken / "model")
    (broken / "manifest.json").unlink()
    (broken / ".run-incomplete").write_text("{}")  # as a crash leaves it
    resumed = _dpo(tiny_model_dir, separable_pairs, broken, *flags)
    _same(whole, resumed, tol=1e-6)
    # a full fine-tune cannot rebuild its reference after training began: a lost cache is an error
    (broken / "ref_logps.parquet").unlink()
    shutil.rmtree(broken / "checkpoints" / "step-000004")
    argv = ["train", "dpo", "--model", str(tiny_model_dir), "--data", str(separable_pairs), "--output", str(broken),
            *map(str, flags)]
    assert main(argv) == 2


def test_rpo_adds_the_chosen_nll_and_keeps_chosen_logps_up(tiny_model_dir, separable_pairs, tmp_path):
    flags = ["--max-steps", 6, "--batch-size", 16, "--lr", 1e-3, "--schedule", "constant", "--save-every", 0]
    plain = _dpo(tiny_model_dir, separable_pairs, tmp_path / "plain", *flags)
    rpo = _dpo(tiny_model_dir, separable_pairs, tmp_path / "rpo", *flags, "--rpo-alpha", 1.0)
    # step 0: policy == reference, so the loss is ln 2 plus the token-mean NLL of the chosen answers
    assert rpo[0]["nll/chosen"] > 0 and "nll/chosen" not in plain[0]
    assert rpo[0]["loss"] == pytest.approx(math.log(2) + rpo[0]["nll/chosen"], abs=1e-4)
    assert rpo[-1]["nll/chosen"] < rpo[0]["nll/chosen"]
    assert rpo[-1]["logps/chosen"] > plain[-1]["logps/chosen"]
    # the NLL is a mean over the step's chosen tokens, so accumulation does not change it
    split = _dpo(tiny_model_dir, separable_pairs, tmp_path / "split", *flags[:2], "--batch-size", 8, "--grad-accum", 2,
                 *flags[4:], "--rpo-alpha", 1.0)
    _same(rpo[:2], split[:2], keys=("loss", "grad_norm"))


def test_a_ref_cache_that_is_not_a_cache_is_refused_and_kept(tiny_model_dir, separable_pairs, tmp_path, capsys):
    notes = tmp_path / "notes.parquet"
    write_table(pa.table({"x": [1, 2]}), notes)
    text = tmp_path / "notes.txt"
    text.write_text("my notes")
    for cache, word in [(notes, "columns ['x']"), (text, "refusing to overwrite it"), (tmp_path, "a directory")]:
        assert main(["train", "dpo", "--model", str(tiny_model_dir), "--data", str(separable_pairs),
                     "--ref-cache", str(cache), "--output", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert f"--ref-cache {cache}: not a reference log-prob cache" in err and word in err, err
    assert text.read_text() == "my notes" and not (tmp_path / "o").exists()
