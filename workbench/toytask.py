"""A toy verifiable task a tiny model learns in minutes on 2 CPU cores, for the demo and quick experiments.

The task: sort 5-8 random digits in descending order (`sort 10190115` -> `#### 95111100`; descending so an
answer never starts with 0, which keeps exact-string checking honest). Three look-alike domains (ascending
sort, reversal, copying) give a mixture search something to choose between. The tokenizer is a byte-level
BPE in which every digit is one token (288 entries), and the model a random ~0.5M-parameter Llama
(hidden 128, 2 layers, 4 heads with 2 KV heads, FFN 512, tied embeddings); measured in
the research note parity_and_demo.md: 600 SFT steps reach ~99%, 60 steps ~25%.

    python -m workbench.toytask OUTDIR   # writes the task's files and a tiny model under OUTDIR
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

TASK = "sort_desc"
DOMAINS: dict[str, tuple[str, Callable[[str], str]]] = {
    "sort_desc": ("sort", lambda d: "".join(sorted(d, reverse=True))),
    "sort_asc": ("ascending", lambda d: "".join(sorted(d))),
    "reverse": ("reverse", lambda d: d[::-1]),
    "copy": ("copy", lambda d: d),
}
MODEL_SIZE = dict(hidden_size=128, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2)


def make_rows(domain: str, count: int, rng: np.random.Generator, start: int = 0,
              exclude: set[str] | None = None) -> list[dict]:
    """`count` distinct rows {id, question, answer, text, domain} of `domain`, none of whose questions is in
    `exclude` (the held-out set); ids are `{domain}-{start + i}`."""
    word, solve = DOMAINS[domain]
    seen = set(exclude or ())
    rows: list[dict] = []
    while len(rows) < count:
        digits = "".join(map(str, rng.integers(0, 10, size=int(rng.integers(5, 9)))))
        question = f"{word} {digits}"
        if question in seen:
            continue
        seen.add(question)
        answer = f"#### {solve(digits)}"
        rows.append({"id": f"{domain}-{start + len(rows)}", "question": question, "answer": answer,
                     "text": f"{question}\n{answer}", "domain": domain})
    return rows


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(path)
    return path


def write_task(out: str | Path, train: int = 3000, heldout: int = 200, other: int = 1500, duplicates: int = 300,
               contaminated: int = 60, seed: int = 0, leak_copies: int = 1) -> dict[str, Path]:
    """Write the task's files under `out` and return their paths by name:

    - `heldout`: `heldout` sort_desc items, the benchmark every stage is scored on;
    - `raw`: `train` distinct sort_desc rows plus `duplicates` repeated rows and `leak_copies` copies of
      `contaminated` held-out items (the planted problems curation must find), shuffled;
    - `prompts`: distinct sort_desc training prompts for distillation, GRPO and pairs (none held out);
    - one file per other domain (`sort_asc`, `reverse`, `copy`) with `other` rows each.
    """
    out = Path(out)
    rng = np.random.default_rng(seed)
    test = make_rows(TASK, heldout, rng, start=1_000_000)
    held = {r["question"] for r in test}
    clean = make_rows(TASK, train, rng, exclude=held)
    dups = [dict(clean[i], id=f"{clean[i]['id']}-dup") for i in rng.choice(len(clean), duplicates, replace=True)]
    leaks = [dict(test[i], id=f"leak-{i}-{c}") for i in rng.choice(len(test), contaminated, replace=False)
             for c in range(leak_copies)]
    raw = clean + dups + leaks
    raw = [raw[i] for i in rng.permutation(len(raw))]
    prompts = make_rows(TASK, train, rng, start=2_000_000, exclude=held | {r["question"] for r in clean})
    paths = {"heldout": write_jsonl(test, out / "heldout.jsonl"), "raw": write_jsonl(raw, out / "raw.jsonl"),
             "prompts": write_jsonl(prompts, out / "prompts.jsonl")}
    for domain in DOMAINS:
        if domain != TASK:
            paths[domain] = write_jsonl(make_rows(domain, other, rng), out / f"{domain}.jsonl")
    return paths


def toy_tokenizer():
    """A byte-level BPE (288 entries) whose pre-tokenizer splits every digit into its own token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from workbench.fixtures import CHAT_TEMPLATE, SPECIAL_TOKENS

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=288, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    words = [f"<|im_start|>user\n{w} 123<|im_end|>\n<|im_start|>assistant\n#### 321<|im_end|>\n"
             for w, _ in DOMAINS.values()]
    tok.train_from_iterator(words * 50, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|bos|>", eos_token="<|im_end|>",
                                   pad_token="<|pad|>", unk_token=None)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def save_toy_model(path: str | Path, seed: int = 0) -> Path:
    """Save a random toy model and its tokenizer to `path` (replacing it); return the path."""

    from workbench.fixtures import make_tiny_model, save_model_dir

    tokenizer = toy_tokenizer()
    model = make_tiny_model(tokenizer, "llama", seed=seed, max_positions=128, **MODEL_SIZE)
    return save_model_dir(Path(path), model, tokenizer)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "toytask")
    for name, p in write_task(target).items():
        print(f"{name}: {p}")
    print(f"model: {save_toy_model(target / 'model')}")
