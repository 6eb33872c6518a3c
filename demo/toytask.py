"""A toy verifiable task a tiny model learns in minutes on 2 CPU cores, for the demo and quick experiments.

The task: sort random digits in descending order (`sort 10190115` -> `#### 95111100`; descending so an
answer never starts with 0, which keeps exact-string checking honest). Three look-alike domains (ascending
sort, reversal, copying) give a mixture search something to choose between. The user's data has 5-8
digits; the benchmark, the teacher's data and the distillation prompts 5-10, so the longer items are what
distillation brings (a model trained on 5-8 digits gets 0% of 9-10 digit items). The tokenizer is a
byte-level BPE in which every digit is one token (288 entries), and the model a random ~0.5M-parameter
Llama (hidden 128, 2 layers, 4 heads with 2 KV heads, FFN 512, tied embeddings). Measured here (batch 64,
lr 3e-3): 500 SFT steps on 5-10 digit rows reach 99.7% on the 5-10 digit benchmark; 150 steps on 5-8
digit rows 67% of its 5-8 digit items.

    python -m demo.toytask OUTDIR   # writes the task's files and a tiny model under OUTDIR
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from workbench.runfiles import write_atomic

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
              exclude: set[str] | None = None, lengths: tuple[int, int] = (5, 8)) -> list[dict]:
    """`count` distinct rows {id, question, answer, text, domain} of `domain` of `lengths[0]` to
    `lengths[1]` digits, none of whose questions is in `exclude` (the held-out set); ids are `{domain}-{start + i}`."""
    word, solve = DOMAINS[domain]
    seen = set(exclude or ())
    rows: list[dict] = []
    while len(rows) < count:
        digits = "".join(map(str, rng.integers(0, 10, size=int(rng.integers(lengths[0], lengths[1] + 1)))))
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
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))
    return path


REFUSAL = "I'm sorry, but I can't help with that."


def junk_rows(domain: str, clean: list[dict], loops: int, refusals: int, rng: np.random.Generator) -> list[dict]:
    """The two failures of generated post-training data that curation's filters catch: answers that do not
    stop (the right answer, then the same digits over and over: `degenerate_repetition`) and refusals
    (`refusal`), on prompts drawn from `clean`."""
    rows = []
    for kind, count in (("loop", loops), ("refusal", refusals)):
        for j, i in enumerate(rng.choice(len(clean), count, replace=count > len(clean))):
            row = clean[int(i)]
            digits = row["answer"].removeprefix("#### ")
            answer = "#### " + " ".join([digits] * 24) if kind == "loop" else REFUSAL
            rows.append(dict(row, id=f"{domain}-{kind}-{j}", answer=answer, text=f"{row['question']}\n{answer}"))
    return rows


def write_task(out: str | Path, train: int = 3000, heldout: int = 300, other: int = 3000, duplicates: int = 600,
               loops: int = 600, refusals: int = 300, leaked: int = 30, leak_copies: int = 10, teacher: int = 6000,
               seed: int = 0) -> dict[str, Path]:
    """Write the task's files under `out` and return their paths by name:

    - `heldout`: `heldout` sort_desc items of 5-10 digits, the benchmark every stage is scored on;
    - one raw file per domain (`sort_desc`, `sort_asc`, `reverse`, `copy`) under `raw/`: the user's data,
      5-8 digits only, `train` (target) or `other` distinct rows, plus the planted problems curation must
      find: `duplicates` exact copies, `loops` answers that never stop and `refusals` refusals per domain,
      and in the target domain `leak_copies` copies of `leaked` held-out items; shuffled;
    - `teacher`: `teacher` sort_desc rows of 5-10 digits, what the teacher (standing in for an API model)
      is trained on; the longer items are what the user's data lacks and distillation brings;
    - `prompts`: distinct sort_desc prompts of 5-10 digits for distillation, pairs and GRPO (none held out).
    """
    out = Path(out)
    rng = np.random.default_rng(seed)
    wide = (5, 10)
    test = make_rows(TASK, heldout, rng, start=1_000_000, lengths=wide)
    held = {r["question"] for r in test}
    paths = {"heldout": write_jsonl(test, out / "heldout.jsonl")}
    used = set(held)
    for domain in DOMAINS:
        clean = make_rows(domain, train if domain == TASK else other, rng, exclude=held)
        used |= {r["question"] for r in clean}
        dups = [dict(clean[i], id=f"{clean[i]['id']}-dup-{j}")
                for j, i in enumerate(rng.choice(len(clean), duplicates, replace=True))]
        leaks = [] if domain != TASK else [
            dict(test[i], id=f"leak-{i}-{c}") for i in rng.choice(len(test), leaked, replace=False)
            for c in range(leak_copies)]
        raw = clean + dups + junk_rows(domain, clean, loops, refusals, rng) + leaks
        paths[domain] = write_jsonl([raw[i] for i in rng.permutation(len(raw))], out / "raw" / f"{domain}.jsonl")
    paths["teacher"] = write_jsonl(make_rows(TASK, teacher, rng, start=3_000_000, exclude=held, lengths=wide),
                                   out / "teacher.jsonl")
    paths["prompts"] = write_jsonl(make_rows(TASK, train, rng, start=2_000_000, lengths=wide,
                                             exclude=used | {json.loads(r)["question"] for r in
                                                             paths["teacher"].read_text().splitlines()}),
                                   out / "prompts.jsonl")
    return paths


def toy_tokenizer():
    """A byte-level BPE (288 entries) whose pre-tokenizer splits every digit into its own token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from demo.tiny_models import CHAT_TEMPLATE, SPECIAL_TOKENS

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

    from demo.tiny_models import make_tiny_model, save_model_dir

    tokenizer = toy_tokenizer()
    model = make_tiny_model(tokenizer, "llama", seed=seed, max_positions=128, **MODEL_SIZE)
    return save_model_dir(Path(path), model, tokenizer)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "toytask")
    for name, p in write_task(target).items():
        print(f"{name}: {p}")
    print(f"model: {save_toy_model(target / 'model')}")
