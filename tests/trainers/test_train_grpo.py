"""`wb train grpo` on the tiny model: a reward that rises on a toy verifiable task, user reward functions
(extra columns, clear errors), GFPO and DAPO dynamic sampling inside a run, built-in rewards."""

from __future__ import annotations

import json
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest

from trainers.grpo import GRPOConfig, train_grpo
from trainers.loop import read_metrics
from trainers.rewards import parse_reward, score, soft_overlong
from workbench.errors import InputError

REWARDS = textwrap.dedent('''
    def divisible(completion_ids, modulus, **_):
        """Fraction of completion tokens whose id is a multiple of the row's `modulus` (about 1/4 at random)."""
        return [sum(t % m == 0 for t in ids) / len(ids) for ids, m in zip(completion_ids, modulus)]

    def flat_or_divisible(completion_ids, modulus, flat, **_):
        """Constant for rows marked flat (zero spread), else `divisible`."""
        return [1.0 if f else v for f, v in zip(flat, divisible(completion_ids, modulus))]

    def broken(completions, **_):
        return [1 / 0 for _ in completions]

    def short(completions, **_):
        return [1.0]
''')


@pytest.fixture()
def toy(tmp_path, monkeypatch):
    (tmp_path / "toy_rewards.py").write_text(REWARDS)
    monkeypatch.syspath_prepend(str(tmp_path))
    rows = [{"prompt": f"Count {i} apples", "modulus": 4, "flat": i % 2 == 0} for i in range(16)]
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _cfg(model, prompts, out, **kw) -> GRPOConfig:
    base = dict(model=str(model), prompts=str(prompts), output=str(out), reward=["toy_rewards:divisible"],
                max_steps=1, lr=1e-2, schedule="constant", num_generations=8, prompts_per_step=4, max_new_tokens=8,
                batch_size=32, save_every=0, max_length=128)
    return GRPOConfig(**{**base, **kw})


def test_mean_reward_rises_on_a_toy_verifiable_task(tiny_model_dir, toy, tmp_path):
    manifest = train_grpo(_cfg(tiny_model_dir, toy, tmp_path / "run", max_steps=25), log=lambda *_: None)
    rewards = [r["reward"] for r in read_metrics(tmp_path / "run")]
    assert len(rewards) == 25 and manifest["steps"] == 25
    assert np.mean(rewards[:5]) < 0.4  # chance is about 1/4
    assert np.mean(rewards[-5:]) > 0.7
    last = read_metrics(tmp_path / "run")[-1]
    for key in ("rewards/toy_rewards:divisible/mean", "frac_reward_zero_std", "clip_ratio/region", "entropy",
                "completions/mean_length", "gen_tokens_per_s", "train_tokens_per_s", "time/generation",
                "time/training"):
        assert key in last, key
    assert (tmp_path / "run" / "model" / "config.json").exists()


def test_gfpo_trains_on_the_kept_subset_only(tiny_model_dir, toy, tmp_path):
    train_grpo(_cfg(tiny_model_dir, toy, tmp_path / "run", num_generations=6, gfpo_keep=3), log=lambda *_: None)
    (record,) = read_metrics(tmp_path / "run")
    assert record["sequences"] == 4 * 3  # k of G' per prompt
    assert record["sampling/groups_drawn"] == 4


def test_dynamic_sampling_refills_zero_spread_groups_in_a_run(tiny_model_dir, toy, tmp_path):
    cfg = _cfg(tiny_model_dir, toy, tmp_path / "run", reward=["toy_rewards:flat_or_divisible"],
               dynamic_sampling=True, max_sampling_attempts=6)
    train_grpo(cfg, log=lambda *_: None)
    (record,) = read_metrics(tmp_path / "run")
    assert record["sampling/attempts"] >= 2  # half the prompts give flat groups, so one draw cannot fill 4
    assert record["sampling/groups_kept"] == 4 and record["sequences"] == 4 * 8
    assert record["frac_reward_zero_std"] > 0


@pytest.mark.parametrize(("name", "message"), [
    ("toy_rewards:broken", "reward 'toy_rewards:broken' raised ZeroDivisionError"),
    ("toy_rewards:short", "reward 'toy_rewards:short' must return a list of 32 numbers"),
    ("toy_rewards:missing", "module 'toy_rewards' has no function 'missing'"),
    ("no_such_module:f", "cannot import module 'no_such_module'"),
    ("bleu", "unknown reward 'bleu'"),
])
def test_a_bad_user_reward_is_a_clear_error_naming_it(tiny_model_dir, toy, tmp_path, name, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        train_grpo(_cfg(tiny_model_dir, toy, tmp_path / "run", reward=[name]), log=lambda *_: None)


def test_builtin_rewards_and_weights():
    opts = SimpleNamespace(format_pattern=r"####\s*-?[\d,]+\s*$", length_target=4, max_new_tokens=10, overlong_buffer=4)
    specs = [parse_reward(s, opts) for s in ("math", "format:0.5", "length:2", "overlong")]
    assert [(s.name, s.weight) for s in specs] == [("math", 1.0), ("format", 0.5), ("length", 2.0), ("overlong", 1.0)]
    completions = ["so 48 + 24 = 72 #### 72", "I think it is 71", "#### 72"]
    ids = [[1] * 4, [1] * 8, [1] * 10]
    gold = ["Natalia sold 48+24 = 72 clips.\n#### 72"] * 3
    total, per = score(specs, ["q"] * 3, completions, ids, {"answer": gold})
    assert per["math"].tolist() == [1.0, 0.0, 1.0]
    assert per["format"].tolist() == [1.0, 0.0, 1.0]
    assert per["length"].tolist() == [1.0, 0.0, 0.0]
    assert per["overlong"].tolist() == [0.0, -0.5, -1.0]  # free up to 6 tokens, then linear to -1 at 10
    assert total.tolist() == pytest.approx([1 + 0.5 + 2 + 0, -0.5, 1 + 0.5 - 1])
    assert soft_overlong(6, 10, 4) == 0.0 and soft_overlong(20, 10, 4) == -1.0


def test_cli_on_bundled_gsm8k_with_math_and_format_rewards_resumes(tiny_model_dir, tmp_path, capsys):
    from workbench.cli import main
    from workbench.rundir import read_manifest
    from workbench.workspace import bundled_data_dir

    config = tmp_path / "grpo.yaml"
    config.write_text("prompt_field: question\nreward: [math, 'format:0.5', 'overlong:0.1']\nnum_generations: 4\n"
                      "prompts_per_step: 2\nmax_new_tokens: 8\noverlong_buffer: 4\nmax_length: 512\n"
                      "loss_type: grpo\nnum_iterations: 2\nbeta: 0.05\nsave_every: 1\n")
    argv = ["train", "grpo", "--config", str(config), "--model", str(tiny_model_dir), "--prompts",
            str(bundled_data_dir() / "gsm8k" / "test.jsonl"), "--output", str(tmp_path / "run"), "--max-steps"]
    assert main([*argv, "2"]) == 0
    assert main([*argv, "3"]) == 0  # the same command with more steps resumes from step 2
    assert "resuming from" in capsys.readouterr().out
    metrics = read_metrics(tmp_path / "run")
    assert [m["step"] for m in metrics] == [1, 2, 3]
    last = metrics[-1]
    assert last["rewards/math/mean"] == 0.0 and "rewards/format/mean" in last  # a random model solves nothing
    assert last["completions/clipped_ratio"] > 0 and last["rewards/overlong/mean"] < 0
    assert last["kl"] >= 0 and last["time/logprobs"] > 0  # beta > 0 and two passes need recomputed log-probs
    manifest = read_manifest(tmp_path / "run")
    assert manifest["status"] == "complete" and manifest["config"]["loss_type"] == "grpo"
    assert manifest["usage"]["sampled_tokens"] > 0


def test_cli_errors_are_one_line(tiny_model_dir, toy, tmp_path, capsys):
    from workbench.cli import main

    assert main(["train", "grpo", "--model", str(tiny_model_dir), "--output", str(tmp_path / "o")]) == 2
    assert "--prompts is required" in capsys.readouterr().err
    assert main(["train", "grpo", "--model", str(tiny_model_dir), "--prompts", str(toy), "--output",
                 str(tmp_path / "o2"), "--num-generations", "4", "--gfpo-keep", "4"]) == 2
    assert "--gfpo-keep must be between 2 and --num-generations - 1" in capsys.readouterr().err


def test_dapo_gradient_through_the_model_does_not_depend_on_micro_batch_size(tiny_tokenizer):
    """The same generation batch trained as 1 x 12 or 4 x 3 sequences gives the same gradient under dapo;
    under bnpo (a local token mean) it does not, because the micro-batches hold different token counts."""
    import torch

    from demo.tiny_models import make_tiny_model
    from trainers.client import ClientConfig, TrainingClient
    from trainers.rl import RLConfig, make_item, train_items

    rng = np.random.default_rng(0)
    items = [make_item(list(rng.integers(5, 500, 6)), list(rng.integers(5, 500, n)), float(rng.normal()),
                       list(-rng.random(n))) for n in (2, 9, 4, 7, 3, 12, 5, 1, 8, 6, 10, 4)]

    def grads(loss_type, batch_size):
        client = TrainingClient(make_tiny_model(tiny_tokenizer, seed=0), tiny_tokenizer, ClientConfig(model="tiny"))
        cfg = RLConfig(loss_type=loss_type, batch_size=batch_size, max_new_tokens=12)
        train_items(client, items, cfg, ref_needed=False)
        return torch.cat([p.grad.flatten() for p in client.model.parameters()])

    whole = grads("dapo", 12)
    assert whole.abs().max() > 1e-3
    assert torch.allclose(whole, grads("dapo", 3), atol=1e-6)
    assert not torch.allclose(grads("bnpo", 12), grads("bnpo", 3), atol=1e-4)


def test_a_bad_format_pattern_is_an_input_error_before_any_work(tiny_model_dir, toy, tmp_path, capsys):
    from workbench.cli import main

    rc = main(["train", "grpo", "--model", str(tiny_model_dir), "--prompts", str(toy), "--reward", "format",
               "--format-pattern", "([", "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2 and "--format-pattern '([': not a valid regular expression" in err, err
    assert not (tmp_path / "run").exists()
