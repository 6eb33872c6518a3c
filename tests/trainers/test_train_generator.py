"""The generator seam: `wb serve --allow-weight-updates` in another process takes new weights between
requests and stamps each completion with its weight version; the trainer's client reads token ids and
log-probs back; bad updates are clear 400s and leave the old weights in place."""

from __future__ import annotations

import os

import httpx
import numpy as np
import pytest
import torch

from trainers.generator import RemoteGenerator, WeightFiles, token_id
from workbench.errors import InputError


def _score(url: str, ids: list[int]) -> list[float]:
    model = httpx.get(f"{url}/models", timeout=60).json()["data"][0]["id"]  # another name is a 404
    r = httpx.post(f"{url}/completions", json={"model": model, "prompt": ids, "echo": True, "logprobs": 0,
                                                "max_tokens": 0}, timeout=60)
    return r.json()["choices"][0]["logprobs"]["token_logprobs"][1:]


def test_weights_are_versioned_and_completions_say_which_version_made_them(weight_server, tiny_model_dir,
                                                                             tiny_tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    from trainers.rollouts import render_prompt

    gen = RemoteGenerator(weight_server, tiny_tokenizer)
    files = WeightFiles(tmp_path / "w")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert gen.push_weights(files.write(model, 0), 0) == 0
    row = {"prompt": "Count 3 apples"}
    prompt_ids = render_prompt(tiny_tokenizer, row, "test")
    (group,) = gen.sample_groups([(prompt_ids, row)], n=4, max_new_tokens=6, temperature=1.0, top_p=1.0, seed=1)
    assert group.version == 0 and len(group.tokens) == 4
    for tokens, logps, cut in zip(group.tokens, group.sampler_logps, group.truncated, strict=True):
        assert 1 <= len(tokens) <= 6 and len(logps) == len(tokens) and all(lp <= 0 for lp in logps)
        assert cut == (tokens[-1] != tiny_tokenizer.eos_token_id)
    # the generator's log-probs are the trainer's (same weights, same temperature) up to float noise
    with torch.no_grad():
        ids = torch.tensor([prompt_ids + group.tokens[0]])
        logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)
        mine = logp[torch.arange(len(prompt_ids) - 1, ids.shape[1] - 1), ids[0, len(prompt_ids):]]
    assert np.allclose(mine.numpy(), group.sampler_logps[0], atol=1e-4)

    probe = prompt_ids + [7, 8, 9]
    before = _score(weight_server, probe)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    assert gen.push_weights(files.write(model, 1), 1) == 1
    (group,) = gen.sample_groups([(prompt_ids, row)], n=2, max_new_tokens=4, temperature=1.0, top_p=1.0, seed=1)
    assert group.version == 1
    after = _score(weight_server, probe)
    with torch.no_grad():
        expected = torch.log_softmax(model(torch.tensor([probe])).logits[0, :-1], -1)
        expected = expected[torch.arange(len(probe) - 1), torch.tensor(probe[1:])]
    assert not np.allclose(before, after, atol=1e-3)
    assert np.allclose(after, expected.numpy(), atol=1e-4)  # the server now runs the pushed weights
    assert httpx.get(f"{weight_server}/weights").json() == {"version": 1}
    assert sorted(p.name for p in (tmp_path / "w").glob("v*.pt")) == ["v000000.pt", "v000001.pt"]
    gen.close()


@pytest.mark.parametrize(("body", "message"), [
    ({"version": 3}, "`path` must be"),
    ({"path": "/nonexistent/w.pt", "version": 3}, "inside the server's --weights-dir"),
    ({"path": "PLACEHOLDER", "version": -1}, "non-negative integer"),
    ({"path": "WRONG", "version": 10**6}, "does not match the served model"),
])
def test_bad_weight_updates_are_400s_and_keep_the_old_weights(weight_server, tmp_path, body, message):
    if body.get("path") == "WRONG":
        torch.save({"x": torch.zeros(2)}, tmp_path / "wrong.pt")
        body = {**body, "path": str(tmp_path / "wrong.pt")}
    before = httpx.get(f"{weight_server}/weights").json()["version"]
    token = {"Authorization": f"Bearer {os.environ['WB_WEIGHTS_TOKEN']}"}  # set by local_generator
    r = httpx.post(f"{weight_server}/weights", json=body, timeout=30, headers=token)
    assert r.status_code == 400 and message in r.json()["error"]["message"]
    assert httpx.get(f"{weight_server}/weights").json()["version"] == before


def test_a_server_without_weight_updates_is_a_clear_error(tiny_model_dir, tiny_tokenizer, tmp_path):
    from llm.local_engine import LocalEngine
    from llm.serve import ServerThread, build_app

    thread = ServerThread(build_app(LocalEngine(tiny_model_dir), "tiny"))
    url = thread.start()
    try:
        gen = RemoteGenerator(url, tiny_tokenizer)
        with pytest.raises(InputError, match="--allow-weight-updates"):
            gen.push_weights(tmp_path / "w.pt", 1)
        gen.close()
    finally:
        thread.stop()
    with pytest.raises(InputError, match="cannot list models"):
        RemoteGenerator("http://127.0.0.1:9/v1", tiny_tokenizer)


def test_a_generator_without_the_token_is_told_where_to_put_it(weight_server, tiny_tokenizer, tmp_path):
    gen = RemoteGenerator(weight_server, tiny_tokenizer, token="not-the-token")
    with pytest.raises(InputError, match="WB_WEIGHTS_TOKEN"):
        gen.push_weights(tmp_path / "w.pt", 1)
    gen.close()


def test_token_ids_from_vllm_style_and_wb_serve_entries(tiny_tokenizer):
    assert token_id({"token": "x", "token_id": 17}, tiny_tokenizer) == 17
    assert token_id({"token": "token_id:42"}, tiny_tokenizer) == 42
    with pytest.raises(InputError, match="return_tokens_as_token_ids"):
        token_id({"token": "no-such-token-in-vocab"}, tiny_tokenizer)
