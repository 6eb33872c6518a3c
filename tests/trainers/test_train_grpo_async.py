"""`wb train grpo --generator URL --max-staleness K` against `wb serve --allow-weight-updates` in another
process: version tracking (staleness is exactly min(step, K)), the generator-vs-trainer gap, rollout
corrections, stale groups dropped and counted, and the ordering of the rollout pipeline."""

from __future__ import annotations

import json
import textwrap
import threading
import time
from types import SimpleNamespace

import pytest

from trainers.async_rollouts import RolloutPipeline, split_stale
from trainers.grpo import GRPOConfig, train_grpo
from trainers.loop import read_metrics
from workbench.errors import InputError

REWARDS = textwrap.dedent('''
    def divisible(completion_ids, modulus, **_):
        return [sum(t % m == 0 for t in ids) / len(ids) for ids, m in zip(completion_ids, modulus)]
''')


@pytest.fixture()
def toy(tmp_path, monkeypatch):
    (tmp_path / "toy_rewards3.py").write_text(REWARDS)
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"Count {i} apples", "modulus": 4}) + "\n" for i in range(16)))
    return path


def _cfg(model, prompts, out, url, **kw) -> GRPOConfig:
    base = dict(model=str(model), prompts=str(prompts), output=str(out), reward=["toy_rewards3:divisible"],
                max_steps=5, lr=1e-2, schedule="constant", num_generations=8, prompts_per_step=4, max_new_tokens=8,
                batch_size=32, save_every=0, max_length=128, generator=url)
    return GRPOConfig(**{**base, **kw})


def test_synchronous_generator_matches_the_trainer(weight_server, tiny_model_dir, toy, tmp_path):
    train_grpo(_cfg(tiny_model_dir, toy, tmp_path / "run", weight_server, max_staleness=0, max_steps=3),
               log=lambda *_: None)
    metrics = read_metrics(tmp_path / "run")
    assert [m["async/staleness_max"] for m in metrics] == [0, 0, 0]
    assert [m["policy_version"] for m in metrics] == [1, 2, 3]
    for m in metrics:
        assert m["async/dropped_groups"] == 0 and m["sequences"] == 32
        assert m["rollout/logprob_abs_diff"] < 1e-3 and abs(m["rollout/kl_k3"]) < 1e-5  # same weights: float noise
        for key in ("time/generation", "time/generation_wait", "time/training", "time/logprobs", "reward"):
            assert key in m, key


@pytest.mark.slow
def test_staleness_k_samples_from_weights_k_versions_old_and_the_correction_sees_it(weight_server, tiny_model_dir,
                                                                                    toy, tmp_path):
    cfg = _cfg(tiny_model_dir, toy, tmp_path / "run", weight_server, max_staleness=2, max_steps=5,
               rollout_correction="tis", correction_cap=1.05)
    train_grpo(cfg, log=lambda *_: None)
    metrics = read_metrics(tmp_path / "run")
    # step s (0-based) trains on rollouts sampled by version max(s - 2, 0)
    assert [m["async/staleness_max"] for m in metrics] == [0, 1, 2, 2, 2]
    assert [m["async/staleness_mean"] for m in metrics] == [0.0, 1.0, 2.0, 2.0, 2.0]
    assert all(m["async/dropped_groups"] == 0 for m in metrics)
    assert metrics[0]["rollout/logprob_abs_diff"] < 1e-3
    # once the policy has moved, the generator's log-probs differ and truncation kicks in
    assert all(m["rollout/logprob_abs_diff"] > 1e-2 and m["rollout/kl_k3"] > 0 for m in metrics[2:])
    assert all(m["rollout/corrected_share"] > 0 for m in metrics[2:])
    assert metrics[0]["rollout/corrected_share"] == 0


def test_groups_older_than_k_are_dropped_and_counted(weight_server, tiny_model_dir, toy, tmp_path, monkeypatch):
    from trainers.generator import RemoteGenerator

    real = RemoteGenerator.sample_groups

    def one_group_reports_an_old_version(self, prompts, *args, **kw):
        groups = real(self, prompts, *args, **kw)
        groups[0].version = -1  # e.g. a restarted server that lost the version
        return groups

    monkeypatch.setattr(RemoteGenerator, "sample_groups", one_group_reports_an_old_version)
    train_grpo(_cfg(tiny_model_dir, toy, tmp_path / "run", weight_server, max_staleness=1, max_steps=3),
               log=lambda *_: None)
    metrics = read_metrics(tmp_path / "run")
    assert [m["async/dropped_groups"] for m in metrics] == [1, 1, 1]
    assert [m["sequences"] for m in metrics] == [24, 24, 24]  # 3 of 4 groups trained


def test_a_generator_that_never_updates_is_an_error_not_a_silent_stall(weight_server, tiny_model_dir, toy,
                                                                        tmp_path, monkeypatch):
    from trainers.generator import RemoteGenerator

    real = RemoteGenerator.push_weights
    calls = []

    def first_push_only(self, path, version):
        calls.append(version)
        if len(calls) == 1:
            return real(self, path, version)
        return version  # claims success, but the server keeps the first weights

    monkeypatch.setattr(RemoteGenerator, "push_weights", first_push_only)
    with pytest.raises(InputError, match="older than"):
        train_grpo(_cfg(tiny_model_dir, toy, tmp_path / "run", weight_server, max_staleness=1, max_steps=4),
                   log=lambda *_: None)
    assert [m["step"] for m in read_metrics(tmp_path / "run")] == [1, 2]  # steps 0 and 1 were within K


def test_split_stale_counts_by_version():
    groups = [SimpleNamespace(version=v) for v in (5, 4, 3, -1)]
    kept, dropped, ages = split_stale(groups, step=5, max_staleness=1)
    assert [g.version for g in kept] == [5, 4] and ages == [0, 1]
    assert [g.version for g in dropped] == [3, -1]


def test_pipeline_runs_generation_k_steps_ahead_in_order():
    events: list[str] = []
    lock = threading.Lock()

    def produce(step):
        with lock:
            events.append(f"gen{step}")
        return step

    pipe = RolloutPipeline(produce, start=0, total=5, max_staleness=2)
    assert pipe.get(0)[0] == 0
    time.sleep(0.05)
    assert events == ["gen0", "gen1", "gen2"]  # version 0 unlocks steps 0..K
    pipe.run(lambda: events.append("push1"))
    pipe.advance(1)
    assert pipe.get(1)[0] == 1 and pipe.get(2)[0] == 2 and pipe.get(3)[0] == 3
    assert events == ["gen0", "gen1", "gen2", "push1", "gen3"]  # the push lands before the step it unlocks
    pipe.advance(4)
    assert pipe.get(4)[0] == 4 and pipe.next_step == 5  # never past the last step
    pipe.close()


def test_a_failed_weight_push_surfaces_at_the_next_batch():
    pipe = RolloutPipeline(lambda step: step, start=0, total=3, max_staleness=0)
    assert pipe.get(0)[0] == 0

    def refused():
        raise InputError("weight update refused (400: shape mismatch)")

    pipe.run(refused)
    pipe.advance(1)
    with pytest.raises(InputError, match="shape mismatch"):
        pipe.get(1)
    pipe.close()


@pytest.mark.slow
def test_a_resumed_async_run_pushes_its_weights_and_restarts_the_pipeline(weight_server, tiny_model_dir, toy,
                                                                          tmp_path):
    cfg = _cfg(tiny_model_dir, toy, tmp_path / "run", weight_server, max_staleness=1, max_steps=2, save_every=1)
    train_grpo(cfg, log=lambda *_: None)
    cfg.max_steps = 4
    train_grpo(cfg, log=lambda *_: None)  # the same command with more steps resumes from step 2
    metrics = read_metrics(tmp_path / "run")
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]
    # the resumed process pushed version 2 before sampling step 2, so that step is fresh again
    assert [m["async/staleness_max"] for m in metrics] == [0, 1, 0, 1]
    assert [m["policy_version"] for m in metrics] == [1, 2, 3, 4]
