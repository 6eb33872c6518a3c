"""`wb train grpo --loss-type cispo|gvpo|riskpo` and `--reward-normalization per-reward` inside real runs on
the toy verifiable task (reward = share of completion token ids divisible by 4), and `--grad-accum`
refused by the RL commands."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from trainers.grpo import GRPOConfig, train_grpo
from trainers.loop import read_metrics
from trainers.rl import make_item, micro_batches

REWARDS = textwrap.dedent('''
    def divisible(completion_ids, modulus, **_):
        return [sum(t % m == 0 for t in ids) / len(ids) for ids, m in zip(completion_ids, modulus)]

    def short(completion_ids, **_):
        return [1.0 if len(ids) <= 4 else 0.0 for ids in completion_ids]
''')


@pytest.fixture()
def toy(tmp_path, monkeypatch):
    (tmp_path / "toy_rewards2.py").write_text(REWARDS)
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"Count {i} apples", "modulus": 4}) + "\n" for i in range(16)))
    return path


def _cfg(model, prompts, out, **kw) -> GRPOConfig:
    base = dict(model=str(model), prompts=str(prompts), output=str(out), reward=["toy_rewards2:divisible"],
                max_steps=16, lr=1e-2, schedule="constant", num_generations=8, prompts_per_step=4, max_new_tokens=8,
                batch_size=32, save_every=0, max_length=128)
    return GRPOConfig(**{**base, **kw})


@pytest.mark.slow
@pytest.mark.parametrize(("loss_type", "extra"), [("cispo", {}), ("gvpo", {"scale_rewards": "none", "gvpo_beta": 0.1,
                                                                           "lr": 3e-2}),
                                                  ("riskpo", {})])
def test_each_new_objective_raises_the_reward(tiny_model_dir, toy, tmp_path, loss_type, extra):
    train_grpo(_cfg(tiny_model_dir, toy, tmp_path / "run", loss_type=loss_type, **extra), log=lambda *_: None)
    rewards = [r["reward"] for r in read_metrics(tmp_path / "run")]
    assert len(rewards) == 16
    assert np.mean(rewards[:4]) < 0.4  # chance is about 1/4
    assert np.mean(rewards[-4:]) > np.mean(rewards[:4]) + 0.2, rewards


def test_per_reward_normalisation_logs_each_component(tiny_model_dir, toy, tmp_path):
    cfg = _cfg(tiny_model_dir, toy, tmp_path / "run", reward=["toy_rewards2:divisible", "toy_rewards2:short:0.5"],
               reward_normalization="per-reward", max_steps=2)
    train_grpo(cfg, log=lambda *_: None)
    for record in read_metrics(tmp_path / "run"):
        for name in ("toy_rewards2:divisible", "toy_rewards2:short"):
            assert 0 <= record[f"rewards/{name}/mean"] <= 1 and record[f"rewards/{name}/std"] >= 0
        # the logged total is the weighted sum of the components' means
        assert record["reward"] == pytest.approx(record["rewards/toy_rewards2:divisible/mean"]
                                                 + 0.5 * record["rewards/toy_rewards2:short/mean"])


def test_gvpo_micro_batches_keep_groups_whole():
    items = [make_item([1, 2], [3] * (1 + i % 3), 0.0, [-1.0] * (1 + i % 3), group=i // 4) for i in range(12)]
    batches = micro_batches(items, batch_size=6, whole_groups=True)
    assert [sorted({it.group for it in mb}) for mb in batches] == [[0], [1], [2]]
    assert [len(mb) for mb in micro_batches(items, 8, whole_groups=True)] == [8, 4]
    assert [len(mb) for mb in micro_batches(items, 5, whole_groups=False)] == [5, 5, 2]


def test_grad_accum_is_refused_by_rl_commands(tiny_model_dir, toy, tmp_path, capsys):
    from workbench.cli import main

    for trainer in ("grpo", "opd"):
        argv = ["train", trainer, "--model", str(tiny_model_dir), "--prompts", str(toy), "--output",
                str(tmp_path / trainer), "--grad-accum", "2"]
        if trainer == "opd":
            argv += ["--teacher", str(tiny_model_dir)]
        assert main(argv) == 2
        assert "--grad-accum 2: RL commands already accumulate" in capsys.readouterr().err


@pytest.mark.parametrize(("flags", "message"), [
    (["--loss-type", "riskpo", "--risk-alpha", "0.9", "--risk-beta", "0.5"], "0 < alpha < beta"),
    (["--max-staleness", "1"], "--max-staleness needs --generator"),
    (["--generator", "localhost:1"], "expected an http"),
    (["--loss-type", "gvpo", "--mask-truncated-completions"], "gvpo needs whole groups"),
])
def test_inconsistent_options_are_one_line_errors(tiny_model_dir, toy, tmp_path, capsys, flags, message):
    from workbench.cli import main

    argv = ["train", "grpo", "--model", str(tiny_model_dir), "--prompts", str(toy), "--output", str(tmp_path / "o"),
            "--reward", "toy_rewards2:divisible", *flags]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
