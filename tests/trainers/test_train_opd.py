"""`wb train opd` on the tiny model: zero advantage against itself, reverse KL that falls against a
peaked (fine-tuned) teacher, and a `wb serve` endpoint teacher that scores like the local one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trainers.loop import read_metrics
from trainers.opd import EndpointTeacher, LocalTeacher, OPDConfig, load_teacher, train_opd
from trainers.rl import make_item
from workbench.errors import InputError


@pytest.fixture()
def prompts(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"Say something about {w}"}) + "\n"
                            for w in ("cats", "dogs", "rain", "bread", "ships", "maps", "tea", "snow")))
    return path


@pytest.fixture(scope="module")
def peaked_teacher(tiny_model_dir, tmp_path_factory):
    """The tiny model fine-tuned until it answers every prompt with the same short text: a peaked teacher."""
    import torch

    from trainers.client import ClientConfig, TrainingClient
    from trainers.collate import collate, trained_tokens
    from trainers.losses import sft_loss
    from trainers.render import render_sft

    torch.set_num_threads(1)
    client = TrainingClient.load(ClientConfig(model=str(tiny_model_dir), lr=1e-2, schedule="constant", total_steps=15))
    rows = [{"prompt": f"Say something about {w}", "completion": "the end the end the end"}
            for w in ("cats", "dogs", "rain", "bread")]
    examples = [render_sft(client.tokenizer, r, "row") for r in rows]
    n = trained_tokens(examples)
    for _ in range(15):
        client.forward_backward(collate(examples, "padded", client.tokenizer.pad_token_id), lambda lp, _b: sft_loss(lp, n))
        client.optim_step()
    path = tmp_path_factory.mktemp("teacher") / "peaked"
    client.save_model(path)
    return path


def _cfg(student, teacher, prompts, out, **kw) -> OPDConfig:
    base = dict(model=str(student), teacher=str(teacher), prompts=str(prompts), output=str(out), max_steps=1,
                lr=1e-2, schedule="constant", num_generations=4, prompts_per_step=4, max_new_tokens=8, batch_size=16,
                save_every=0, max_length=128)
    return OPDConfig(**{**base, **kw})


def test_teacher_equal_to_student_gives_zero_advantage(tiny_model_dir, prompts, tmp_path):
    # one step: the gradient is float noise, which Adam would blow up to lr-sized updates on a second step
    train_opd(_cfg(tiny_model_dir, tiny_model_dir, prompts, tmp_path / "run"), log=lambda *_: None)
    (record,) = read_metrics(tmp_path / "run")
    assert abs(record["reverse_kl"]) < 1e-5
    assert abs(record["loss"]) < 1e-5 and record["grad_norm"] < 1e-4
    assert record["sequences"] == 16


def test_reverse_kl_falls_against_a_peaked_teacher(tiny_model_dir, peaked_teacher, prompts, tmp_path):
    train_opd(_cfg(tiny_model_dir, peaked_teacher, prompts, tmp_path / "run", max_steps=20, lr=3e-2),
              log=lambda *_: None)
    kl = [r["reverse_kl"] for r in read_metrics(tmp_path / "run")]
    assert np.mean(kl[:3]) > 1.0  # the random student is far from the peaked teacher
    assert np.mean(kl[-3:]) < 0.5 * np.mean(kl[:3])


def test_endpoint_teacher_scores_like_the_local_teacher(peaked_teacher, tiny_tokenizer):
    from llm.local_engine import LocalEngine
    from llm.serve import ServerThread, build_app

    local = LocalTeacher(str(peaked_teacher), tiny_tokenizer)
    prompt = tiny_tokenizer("Say something about cats")["input_ids"]
    items = [make_item(prompt, tiny_tokenizer("the end the")["input_ids"], 0.0, [0.0] * 3),
             make_item(prompt[:3], [5, 9, 200, 17], 0.0, [0.0] * 4)]
    server = ServerThread(build_app(LocalEngine(peaked_teacher), "teacher"))
    url = server.start()
    try:
        teacher = load_teacher(OPDConfig(teacher=url), tiny_tokenizer)
        assert isinstance(teacher, EndpointTeacher)
        remote = teacher.score(items)
        assert teacher.prefill_tokens == sum(len(it.example.ids) for it in items)  # metered, like every request
        with pytest.raises(InputError, match="cannot score tokens"):
            load_teacher(OPDConfig(teacher=url.replace("/v1", "/nope")), tiny_tokenizer).score(items[:1])
    finally:
        server.stop()
    for a, b, it in zip(local.score(items), remote, items, strict=True):
        assert len(a) == len(b) == len(it.adv)
        assert np.allclose(a, b, atol=1e-4)


def test_a_teacher_with_another_tokenizer_is_refused(tmp_path):
    from demo.tiny_models import save_tiny_model, train_tokenizer

    a = save_tiny_model(tmp_path / "a", tokenizer=train_tokenizer(vocab_size=300))
    b = save_tiny_model(tmp_path / "b", tokenizer=train_tokenizer(["other words entirely"] * 50, vocab_size=280))
    from trainers.client import load_tokenizer

    with pytest.raises(InputError, match="tokenizer differs"):
        LocalTeacher(str(b), load_tokenizer(str(a)))


def test_cli_with_a_task_reward_and_a_missing_teacher(tiny_model_dir, prompts, tmp_path, capsys):
    from workbench.cli import main

    base = ["train", "opd", "--model", str(tiny_model_dir), "--prompts", str(prompts), "--max-new-tokens", "6",
            "--max-length", "128", "--save-every", "0"]
    assert main([*base, "--output", str(tmp_path / "o1")]) == 2
    assert "--teacher is required" in capsys.readouterr().err
    assert main([*base, "--output", str(tmp_path / "run"), "--teacher", str(tiny_model_dir), "--max-steps", "1",
                 "--reward", "length:0.5", "--length-target", "3"]) == 0
    (record,) = read_metrics(tmp_path / "run")
    assert 0.0 <= record["rewards/length/mean"] < 0.5  # up to 6 tokens against a target of 3
    assert abs(record["reverse_kl"]) < 1e-5 and "time/teacher" in record
