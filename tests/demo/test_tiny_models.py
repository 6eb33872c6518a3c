"""The offline tiny tokenizer and models: save, load back, forward, generate, and assistant masks."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def test_chat_template_assistant_mask_covers_exactly_the_reply(tiny_tokenizer):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"},
                {"role": "assistant", "content": "It is 4."}]
    out = tiny_tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert tiny_tokenizer.decode([i for i, m in zip(ids, mask, strict=True) if m]) == "It is 4.<|im_end|>"
    assert tiny_tokenizer.decode(ids).startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n")
    prompt = tiny_tokenizer.apply_chat_template(messages[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>assistant\n")


def test_tokenizer_round_trips_text(tiny_tokenizer):
    text = "Janet’s ducks lay 16 eggs per day. ∑ x² — ok"
    assert tiny_tokenizer.decode(tiny_tokenizer(text)["input_ids"]) == text


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_tiny_model_saves_loads_forwards_and_generates(tmp_path, tiny_tokenizer, arch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from demo.tiny_models import save_tiny_model

    path = save_tiny_model(tmp_path / arch, arch, tiny_tokenizer, seed=1)
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert model.config.model_type == arch
    assert sum(p.numel() for p in model.parameters()) < 500_000
    batch = tokenizer(["hello there", "a longer line of text"], return_tensors="pt", padding=True)
    out = model(**batch, labels=batch["input_ids"])
    assert out.logits.shape == (2, batch["input_ids"].shape[1], len(tokenizer))
    assert torch.isfinite(out.loss) and out.loss.item() > 0
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                           return_dict=True, return_tensors="pt")
    generated = model.generate(**prompt, max_new_tokens=5, do_sample=False)
    assert generated.shape == (1, prompt["input_ids"].shape[1] + 5)
    # the same seed gives the same weights: fixtures are deterministic
    again = save_tiny_model(tmp_path / f"{arch}-again", arch, tiny_tokenizer, seed=1)
    other = AutoModelForCausalLM.from_pretrained(again)
    assert torch.equal(next(model.parameters()), next(other.parameters()))


def test_tiny_model_learns(tiny_tokenizer):
    """A few optimiser steps on one sentence lower the loss: the fixture is trainable, not a stub."""
    from demo.tiny_models import make_tiny_model

    model = make_tiny_model(tiny_tokenizer, "llama")
    batch = tiny_tokenizer(["To be, or not to be, that is the question."], return_tensors="pt")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(10):
        loss = model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.7
