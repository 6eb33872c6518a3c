"""SmolLM2 behind `wb tinker serve`, driven by the real Tinker SDK: a LoRA client's supervised steps on a
ChatML-rendered answer lower its loss, and the run's manifest records the dtype and threads it loaded with."""

from __future__ import annotations

import json
import sys

import pytest

from tests.net import free_port
from tests.real.conftest import THREADS, start_server, stop_server

pytestmark = pytest.mark.real


def test_tinker_lora_steps_through_the_real_sdk(smollm2_dir, smollm2_tokenizer, tmp_path, monkeypatch):
    tinker = pytest.importorskip("tinker", reason='the Tinker SDK comes with the dev extra: pip install -e ".[dev]"')
    from tinker import types

    port, run = free_port(), tmp_path / "run"
    proc = start_server([sys.executable, "-m", "workbench.cli", "tinker", "serve", "--base-model", str(smollm2_dir),
                         "--port", str(port), "--output", str(run), "--threads", THREADS, "--api-key", "tml-dummy"], port, tmp_path / "log")
    try:
        monkeypatch.setenv("TINKER_API_KEY", "tml-dummy")
        monkeypatch.setenv("TINKER_TELEMETRY", "0")
        service = tinker.ServiceClient(base_url=f"http://127.0.0.1:{port}", api_key="tml-dummy")
        client = service.create_lora_training_client(base_model=str(smollm2_dir), rank=8, seed=0).result()
        messages = [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}]
        prompt = smollm2_tokenizer.apply_chat_template(messages[:1], add_generation_prompt=True, tokenize=True,
                                                       return_dict=False)
        ids = list(smollm2_tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False))
        weights = [0.0] * (len(prompt) - 1) + [1.0] * (len(ids) - len(prompt))  # the answer and <|im_end|>
        datum = types.Datum(model_input=types.ModelInput.from_ints(ids[:-1]),
                            loss_fn_inputs={"target_tokens": ids[1:], "weights": weights})
        losses = []
        for _ in range(2):
            fb = client.forward_backward([datum], "cross_entropy")
            client.optim_step(types.AdamParams(learning_rate=1e-3)).result()
            losses.append(fb.result().metrics["loss:sum"])
        assert all(v > 0 for v in losses) and losses[1] < losses[0]
        service.close("success").result()
    finally:
        stop_server(proc)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["usage"]["trained_tokens"] > 0
    assert manifest["runtime"] == [{"model": str(smollm2_dir), "dtype": "float32", "threads": 1, "device": "cpu"}]
