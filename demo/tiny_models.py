"""Offline fixtures: a tiny byte-level BPE tokenizer trained on bundled text, and tiny random causal LMs.

Tests and the demo cannot download weights, so they build these instead and load them back through the
real `from_pretrained(path)` code path. The chat template is ChatML with `{% generation %}` markers, so
`apply_chat_template(..., return_assistant_tokens_mask=True)` gives assistant-only loss masks.

    python -m demo.tiny_models OUTDIR   # writes OUTDIR/tokenizer, OUTDIR/tiny-llama, ... and OUTDIR/tiny-bert
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from workbench.runfiles import temp_path
from workbench.workspace import bundled_data_dir, workspace_dir

SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|eos|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]

# ChatML. Only the assistant turn's text and its closing <|im_end|> are inside {% generation %}, so the
# assistant mask covers exactly the tokens SFT should learn to produce.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<|im_start|>assistant\n' }}"
    "{%- generation -%}{{ message['content'] }}{{ '<|im_end|>' }}{%- endgeneration -%}"
    "{{ '\n' }}"
    "{%- else -%}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\n' }}{%- endif -%}"
)

# Small enough to train in a second on two cores, big enough to learn something from GSM8K.
TINY_MODEL_SIZES = {
    "llama": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2),
    "qwen2": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2),
}


def bundled_texts(limit_chars: int = 2_000_000) -> Iterator[str]:
    """Text from the bundled data (tinyshakespeare, GSM8K, MATH-500) to train a tokenizer on."""
    import json

    data = bundled_data_dir()
    seen = 0
    sources = [data / "tinyshakespeare" / "input.txt", data / "gsm8k" / "train.jsonl", data / "math500" / "test.jsonl"]
    for path in sources:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if path.suffix == ".jsonl":
                    row = json.loads(line)
                    line = f"{row.get('question', '')}\n{row.get('answer', '')}"
                seen += len(line)
                yield line
                if seen >= limit_chars:
                    return


def train_tokenizer(texts: Iterable[str] | None = None, vocab_size: int = 1024):
    """A byte-level BPE `PreTrainedTokenizerFast` with the ChatML template, trained locally."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts if texts is not None else bundled_texts(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|bos|>", eos_token="<|im_end|>",
                                   pad_token="<|pad|>", unk_token=None)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def make_tiny_model(tokenizer, arch: str = "llama", seed: int = 0, max_positions: int = 512, **overrides):
    """A randomly initialised tiny causal LM (`llama` or `qwen2` architecture) for `tokenizer`."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if arch not in TINY_MODEL_SIZES:
        raise ValueError(f"unknown tiny architecture {arch!r}; expected one of {sorted(TINY_MODEL_SIZES)}")
    config = AutoConfig.for_model(
        arch, vocab_size=len(tokenizer), max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
        **{**TINY_MODEL_SIZES[arch], **overrides},
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def save_tiny_model(path: str | os.PathLike, arch: str = "llama", tokenizer=None, seed: int = 0) -> Path:
    """Build a tokenizer (unless given) and a tiny model, save both to `path`; return the path."""
    path = Path(path)
    tokenizer = tokenizer or train_tokenizer()
    model = make_tiny_model(tokenizer, arch=arch, seed=seed)
    return save_model_dir(path, model, tokenizer)


def save_tiny_encoder(path: str | os.PathLike, tokenizer=None, seed: int = 0, hidden_size: int = 64) -> Path:
    """A tiny random BERT-style encoder (`AutoModel`) and its tokenizer saved at `path`, for embedding
    tests (semantic dedup); return the path."""
    import torch
    from transformers import AutoConfig, AutoModel

    path = Path(path)
    tokenizer = tokenizer or train_tokenizer()
    config = AutoConfig.for_model("bert", vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=2 * hidden_size, max_position_embeddings=512,
                                  pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = AutoModel.from_config(config)
    return save_model_dir(path, model, tokenizer)


def save_model_dir(path: Path, model, tokenizer) -> Path:
    """Save model and tokenizer under a temporary name and rename it into place."""
    tmp = temp_path(path)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if path.exists():
        import shutil

        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


def tiny_model_path(arch: str = "llama") -> Path:
    """A cached tiny model under the workspace (built on first use), for the demo and quick tries."""
    path = workspace_dir() / "fixtures" / f"tiny-{arch}"
    if not (path / "config.json").exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        save_tiny_model(path, arch=arch)
    return path


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "fixtures")
    out.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer()
    tok.save_pretrained(out / "tokenizer")
    for name in TINY_MODEL_SIZES:
        print(save_tiny_model(out / f"tiny-{name}", arch=name, tokenizer=tok))
    print(save_tiny_encoder(out / "tiny-bert", tokenizer=tok))
