"""The token ids that end a sample: every id of the generation config's `eos_token_id` and the tokenizer's.

Llama 3 and Qwen2.5 list several ids in `generation_config.eos_token_id` (e.g. `<|eot_id|>` and
`<|end_of_text|>`); stopping only at `tokenizer.eos_token_id` runs past the end of a turn. Used by the
local engine (`wb serve`, `--backend hf`), the trainers' sampling and rollouts, and the Tinker service.
"""

from __future__ import annotations


def eos_ids(generation_config, tokenizer) -> set[int]:
    """Every id that ends a sample: the generation config's `eos_token_id` (an int or a list; the config may
    be None) and the tokenizer's `eos_token_id`."""
    ids: set[int] = set()
    for value in (getattr(generation_config, "eos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        for v in value if isinstance(value, list | tuple) else [value]:
            if v is not None:
                ids.add(int(v))
    return ids
