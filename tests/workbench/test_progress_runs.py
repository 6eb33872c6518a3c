"""progress.json for runs that complete, fail and are SIGKILLed; `wb runs` and `wb runs --usage`; the one
validation mechanism (NaN and infinity refused everywhere); the Python entry points by their public names."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.errors import InputError
from workbench.progress import ProgressFile
from workbench.runfiles import read_progress
from workbench.runs import list_runs, usage_totals

ROOT = Path(__file__).resolve().parents[2]


def _texts(path: Path, n: int = 40) -> Path:
    rows = [{"text": f"document number {i} says something about topic {i % 7} in plenty of words here"}
            for i in range(n)]
    rows += rows[:5]  # exact duplicates
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_progress_of_a_completed_run_via_the_python_api(tmp_path):
    from curate import DedupConfig, deduplicate

    result = deduplicate(DedupConfig(), [_texts(tmp_path / "a.jsonl")], tmp_path / "dd")
    assert result["rows_in"] == 45 and result["rows_out"] == 40 and result["dropped"] == {"exact_duplicate": 5}
    assert result.path == tmp_path / "dd" and result.read().num_rows == 40
    assert set(result.products) >= {"data.parquet", "removed.parquet"}
    state = read_progress(tmp_path / "dd")
    assert state["state"] == "complete" and state["stage"] == "dedup" and state["pid"] == os.getpid()
    assert state["error"] is None and state["done"] == state["total"] == 45
    assert state["started_at"] <= state["updated_at"]


def test_progress_writes_are_throttled_and_final_states_always_land(tmp_path):
    p = ProgressFile(tmp_path, "x", total=100, min_interval=3600).start()
    p.update(done=10)
    assert read_progress(tmp_path)["done"] == 0  # throttled: nothing written within the interval
    p.update(done=20, phase="second")  # a new phase is always written
    assert read_progress(tmp_path)["done"] == 20 and read_progress(tmp_path)["phase"] == "second"
    p.finish("failed", "boom")
    state = read_progress(tmp_path)
    assert state["state"] == "failed" and state["error"] == "boom"


def test_a_failed_run_keeps_failed_state_and_the_error(tmp_path, tiny_model_dir):
    rewards = tmp_path / "bad_rewards.py"
    rewards.write_text("def broken(completions, **_):\n    return [1 / 0 for _ in completions]\n")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"say {i}"}) + "\n" for i in range(4)))
    sys.path.insert(0, str(tmp_path))
    try:
        from trainers import GRPOConfig, train_grpo

        with pytest.raises(Exception, match="division|reward"):
            train_grpo(GRPOConfig(model=str(tiny_model_dir), data=str(prompts), output=str(tmp_path / "rl"),
                                  reward=["bad_rewards:broken"], max_steps=2, num_generations=2, prompts_per_step=2,
                                  max_new_tokens=4, save_every=0, max_length=64), log=lambda *_: None)
    finally:
        sys.path.remove(str(tmp_path))
    state = read_progress(tmp_path / "rl")
    assert state["state"] == "failed" and state["stage"] == "train-grpo" and state["error"]
    (row,) = list_runs(tmp_path)
    assert row["state"] == "failed" and row["error"] == state["error"]


def _wait_for(predicate, seconds: float = 120.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_a_sigkilled_run_reads_as_interrupted_and_resumes(tmp_path, tiny_model_dir):
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"q{i}", "completion": f"a{i}"}) + "\n" for i in range(8)))
    out = tmp_path / "runs" / "sft"
    argv = [sys.executable, "-m", "workbench.cli", "train", "sft", "--model", str(tiny_model_dir), "--data", str(data),
            "--output", str(out), "--max-steps", "100000", "--save-every", "1", "--eval-fraction", "0",
            "--batch-size", "2", "--lr", "1e-3"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        state = _wait_for(lambda: (s := read_progress(out)) and (s.get("done") or 0) >= 2 and s)
        assert state["state"] == "running" and state["pid"] == proc.pid and state["unit"] == "steps"
        assert state["total"] == 100000 and state["usage"]["trained_tokens"] > 0
        (row,) = list_runs(tmp_path / "runs")
        assert row["state"] == "running" and row["stage"] == "train-sft"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    state = read_progress(out)
    assert state["state"] == "interrupted" and "gone" in state["error"]
    (row,) = list_runs(tmp_path / "runs")
    assert row["state"] == "interrupted"


def test_wb_runs_lists_runs_and_usage_totals_priced_training(tmp_path, tiny_model_dir, capsys):
    ws = tmp_path / "ws"
    assert main(["dedup", str(_texts(tmp_path / "a.jsonl")), "--output", str(ws / "dd")]) == 0
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"q{i}", "completion": f"a{i}"}) + "\n" for i in range(8)))
    assert main(["train", "sft", "--model", str(tiny_model_dir), "--data", str(data), "--output", str(ws / "t" / "sft"),
                 "--max-steps", "2", "--save-every", "0", "--eval-fraction", "0", "--price-trained", "2.5"]) == 0
    capsys.readouterr()
    runs = {r["name"]: r for r in list_runs(ws)}
    assert set(runs) == {"dd", "t/sft"}
    assert runs["dd"]["state"] == "complete" and runs["dd"]["rows_in"] == 45 and runs["dd"]["rows_out"] == 40
    trained = runs["t/sft"]["trained_tokens"]
    assert trained > 0 and math.isclose(runs["t/sft"]["cost_usd"], trained * 2.5 / 1e6)
    totals = usage_totals(list(runs.values()))
    assert totals["total"]["trained_tokens"] == trained and totals["train-sft"]["runs"] == 1
    assert totals["dedup"]["cost_usd"] is None and math.isclose(totals["total"]["cost_usd"], trained * 2.5 / 1e6)

    assert main(["runs", str(ws)]) == 0
    out = capsys.readouterr().out
    assert "dd" in out and "t/sft" in out and "complete" in out and "train-sft" in out
    assert main(["runs", str(ws), "--usage", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["trained_tokens"] == trained
    assert main(["runs", str(tmp_path / "missing")]) == 2


@pytest.mark.parametrize("argv", [
    ["train", "dpo", "--beta", "nan"],
    ["train", "sft", "--lr", "inf"],
    ["distill", "p.jsonl", "--temperature", "nan"],
    ["distill", "p.jsonl", "--max-concurrency", "0"],
])
def test_non_finite_and_out_of_range_options_are_one_line_errors(argv, tmp_path, capsys):
    assert main([*argv, "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ("finite" in err or "at least" in err)
    assert not (tmp_path / "o").exists()


def test_validation_is_the_same_for_yaml_and_python(tmp_path):
    from curate import CurateConfig
    from trainers import DPOConfig
    from workbench.config import build_config, validate

    with pytest.raises(InputError, match="--beta nan: must be a finite number"):
        validate(DPOConfig(beta=float("nan")))
    yaml = tmp_path / "c.yaml"
    yaml.write_text("lr: .nan\n")
    with pytest.raises(InputError, match="--lr nan: must be a finite number"):
        build_config(DPOConfig, config_file=yaml)
    yaml.write_text("filter_settings: {length: {min_words: many}}\n")
    with pytest.raises(InputError, match="option 'filter_settings.length.min_words': expected an integer"):
        build_config(CurateConfig, config_file=yaml)
    yaml.write_text("dedup_settings: {threshold: .inf}\n")
    with pytest.raises(InputError, match="dedup_settings.threshold inf: must be a finite number"):
        build_config(CurateConfig, config_file=yaml)
    yaml.write_text("filter_settings: {length: {min_words: 3}}\ndedup_settings: {keep: longest}\n")
    config = build_config(CurateConfig, config_file=yaml)
    assert config.filter_settings.length.min_words == 3 and config.dedup_settings.keep == "longest"
    with pytest.raises(InputError, match="expected an integer"):
        validate(DPOConfig(max_steps="10"))


def test_the_public_entry_points_resolve():
    import curate
    import distill_data
    import evals
    import mixopt
    import prefs
    import trainers
    from curate.api import curate as curate_fn
    from distill_data.pipeline import distill
    from prefs.pipeline import make_pairs
    from trainers.sft import train_sft

    assert curate.curate is curate_fn and distill_data.distill is distill and prefs.make_pairs is make_pairs
    assert trainers.train_sft is train_sft and callable(trainers.train_opd) and callable(trainers.train_dpo)
    assert callable(evals.evaluate) and evals.EvalConfig().n == 1 and callable(curate.question_curation)
    for name in ("plan_mixtures", "train_proxies", "fit_regressor", "search_mixture", "build_corpus",
                 "confirm_mixture"):
        assert callable(getattr(mixopt, name))
    with pytest.raises(AttributeError):
        _ = curate.nothing_here
