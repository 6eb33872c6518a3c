"""Helpers for the prefs tests: prompt files, a fast config, and a tiny model trained on GSM8K answers."""

from __future__ import annotations

import json
from pathlib import Path

from prefs.config import PrefsConfig


def write_questions(path: Path, questions: list[str], answer: str = "#### 4") -> str:
    with open(path, "w") as f:
        for q in questions:
            f.write(json.dumps({"question": q, "answer": answer}) + "\n")
    return str(path)


def fast_config(prompts: str, output: Path, url: str, **kw) -> PrefsConfig:
    """Strong/weak models on one scripted server, short backoffs, no progress lines."""
    base = dict(prompts=prompts, output=str(output), prompt_field="question", answer_field="answer",
                strong_model="strong", strong_base_url=[url], weak_model="weak", weak_base_url=[url],
                retry_base=0.01, retry_max=0.05, max_attempts=3, progress_seconds=0, max_concurrency=8)
    base.update(kw)
    return PrefsConfig(**base)


def train_on_gsm8k(base: Path, out: Path, steps: int = 150, batch: int = 8, max_len: int = 160,
                   lr: float = 3e-3, skip: int = 0) -> tuple[Path, list[float]]:
    """Train `base` further on GSM8K (question -> answer, loss on the answer, rows from `skip` on) and
    save it; return (path, losses). Sequences keep their last `max_len` tokens, so the model learns to end."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workbench.workspace import bundled_data_dir

    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    rows = [json.loads(line) for line in (bundled_data_dir() / "gsm8k" / "train.jsonl").open()][skip:skip + steps * batch]
    seqs = []
    for row in rows:
        messages = [{"role": "user", "content": row["question"]}, {"role": "assistant", "content": row["answer"]}]
        enc = tok.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
        ids, mask = enc["input_ids"][-max_len:], enc["assistant_masks"][-max_len:]
        seqs.append((ids, mask))
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small trains many times faster on one thread than on contended two
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    losses = []
    for step in range(steps):
        chunk = seqs[step * batch:(step + 1) * batch]
        width = max(len(ids) for ids, _ in chunk)
        ids_BT = torch.full((len(chunk), width), tok.pad_token_id)
        labels_BT = torch.full((len(chunk), width), -100)
        for b, (ids, mask) in enumerate(chunk):
            ids_BT[b, :len(ids)] = torch.tensor(ids)
            labels_BT[b, :len(ids)] = torch.where(torch.tensor(mask, dtype=torch.bool), torch.tensor(ids), -100)
        loss = model(input_ids=ids_BT, attention_mask=(ids_BT != tok.pad_token_id).long(), labels=labels_BT).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    torch.set_num_threads(threads)
    model.eval()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out, losses
