"""The training core on a tiny random model: layouts, masking, accumulation, LoRA, sampling, state."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from demo.tiny_models import make_tiny_model
from trainers.client import ClientConfig, TrainingClient
from trainers.collate import collate, pack, token_seq_ids, trained_tokens
from trainers.losses import sft_loss
from trainers.render import Example, render_sft


def _examples(tokenizer, n=6):
    rows = [{"messages": [{"role": "user", "content": f"Question {i}: " + "why? " * (i + 1)},
                          {"role": "assistant", "content": f"Answer {i}. " * (3 - i % 3)}]} for i in range(n)]
    return [render_sft(tokenizer, r, f"row {i}") for i, r in enumerate(rows)]


def _client(tokenizer, **kw) -> TrainingClient:
    cfg = ClientConfig(model="tiny", **{"lr": 1e-2, "schedule": "constant", "total_steps": 10, **kw})
    torch.manual_seed(0)
    model = make_tiny_model(tokenizer, seed=0)
    if cfg.lora_r:
        from trainers.client import _add_lora

        model = _add_lora(model, cfg)
    return TrainingClient(model, tokenizer, cfg)


def _by_sequence(logps, batch):
    """Flat log-probs regrouped in sequence order (a stable sort keeps token order inside a sequence)."""
    order = torch.sort(token_seq_ids(batch), stable=True).indices
    return logps[order]


def test_pack_fills_bins_without_losing_items():
    lengths = [5, 9, 3, 7, 2, 8, 1]
    bins = pack(lengths, capacity=10)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 10 for b in bins)
    assert len(bins) == 4  # 35 tokens need at least 4 bins of 10


def test_padded_padding_free_and_packed_give_the_same_token_logprobs(tiny_tokenizer):
    client = _client(tiny_tokenizer)
    examples = _examples(tiny_tokenizer)
    pad = tiny_tokenizer.pad_token_id
    out = {}
    for layout in ("padded", "padding_free", "packed"):
        batch = collate(examples, layout, pad, capacity=110)
        out[layout] = _by_sequence(client.compute_logprobs(batch), batch)
    assert collate(examples, "packed", pad, capacity=110)["input_ids"].shape[0] < len(examples)
    assert out["padded"].numel() == trained_tokens(examples)
    assert torch.allclose(out["padded"], out["padding_free"], atol=1e-5)
    assert torch.allclose(out["padded"], out["packed"], atol=1e-5)


def test_prompt_tokens_do_not_affect_the_loss(tiny_tokenizer):
    """Our loss equals the HF loss with prompt labels set to -100, and only assistant tokens are trained."""
    client = _client(tiny_tokenizer)
    examples = _examples(tiny_tokenizer, 3)
    batch = collate(examples, "padded", tiny_tokenizer.pad_token_id)
    n = trained_tokens(examples)
    loss, _ = sft_loss(client.compute_logprobs(batch), n)
    labels = torch.where(batch["loss_mask"], batch["input_ids"], -100)
    logits = client.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    reference = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-5)
    # changing the prompt's *targets* (what a prompt position would be trained to predict) changes nothing:
    # no logit at a prompt position is even computed
    assert batch["loss_mask"].sum() == n and n < (batch["attention_mask"].sum() - len(examples))


def _train_steps(client, micro_batches, steps):
    losses = []
    for _ in range(steps):
        n = sum(trained_tokens(mb) for mb in micro_batches)
        total = 0.0
        for mb in micro_batches:
            batch = collate(mb, "padding_free", 0)
            total += client.forward_backward(batch, lambda lp, _b, n=n: sft_loss(lp, n))["loss"]
        client.optim_step()
        losses.append(total)
    return losses


def test_batch_times_accumulation_equivalence(tiny_tokenizer):
    examples = _examples(tiny_tokenizer, 4)
    one = _client(tiny_tokenizer)
    two = _client(tiny_tokenizer)
    n = trained_tokens(examples)
    for client, micro in ((one, [examples]), (two, [examples[:2], examples[2:]])):
        for mb in micro:
            client.forward_backward(collate(mb, "padding_free", 0), lambda lp, _b: sft_loss(lp, n))
    for (name, p1), p2 in zip(one.model.named_parameters(), two.model.parameters(), strict=True):
        assert torch.allclose(p1.grad, p2.grad, atol=1e-6), name
    one.optimizer.zero_grad()
    two.optimizer.zero_grad()
    l1 = _train_steps(one, [examples], 3)
    l2 = _train_steps(two, [examples[:2], examples[2:]], 3)
    assert l1 == pytest.approx(l2, abs=1e-5)
    assert l1[-1] < l1[0]


def test_lora_trains_only_adapter_weights(tiny_tokenizer):
    client = _client(tiny_tokenizer, lora_r=4, lora_alpha=8)
    before = {n: p.detach().clone() for n, p in client.model.named_parameters()}
    trainable = set(client.trainable_parameters())
    assert trainable and all("lora_" in n for n in trainable)
    _train_steps(client, [_examples(tiny_tokenizer, 3)], 3)
    for n, p in client.model.named_parameters():
        changed = not torch.equal(before[n], p.detach())
        assert changed == (n in trainable), n


def test_sample_returns_tokens_and_their_logprobs(tiny_tokenizer):
    client = _client(tiny_tokenizer)
    prompts = [tiny_tokenizer("Hello there")["input_ids"], tiny_tokenizer("Why")["input_ids"]]
    out = client.sample(prompts, n=3, max_new_tokens=6)
    assert [s.prompt_index for s in out] == [0, 0, 0, 1, 1, 1]
    for s in out:
        assert 1 <= len(s.tokens) <= 6 and len(s.logprobs) == len(s.tokens)
        # temperature 1, no top-p: the sampling log-probs are the model's own log-probs of those tokens
        ids = np.asarray(prompts[s.prompt_index] + s.tokens)
        mask = np.zeros(len(ids), dtype=bool)
        mask[len(prompts[s.prompt_index]):] = True
        scored = client.compute_logprobs(collate([Example(ids, mask)], "padding_free", 0))
        assert torch.allclose(scored, torch.tensor(s.logprobs), atol=1e-4)


def test_save_and_load_state_continue_identically(tiny_tokenizer, tmp_path):
    examples = _examples(tiny_tokenizer, 4)
    a = _client(tiny_tokenizer)
    _train_steps(a, [examples], 2)
    a.save_state(tmp_path / "ckpt", step=2)
    after_a = _train_steps(a, [examples], 2)
    b = _client(tiny_tokenizer)
    assert b.load_state(tmp_path / "ckpt") == {"step": 2}
    after_b = _train_steps(b, [examples], 2)
    assert after_a == pytest.approx(after_b, abs=1e-6)
    assert b.scheduler.last_epoch == 4
