"""Records to token ids and loss masks, through the tokenizer's chat template.

SFT rows are `messages` lists or `prompt`/`completion` pairs (strings or message lists, as in TRL).
The loss mask covers assistant tokens only: from the template's `{% generation %}` markers when it has
them, else by rendering each conversation prefix and marking what each assistant turn adds. Preference
rows (`prompt?`, `chosen`, `rejected`) become two sequences whose masks cover the final assistant turn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from workbench.errors import SchemaError
from workbench.records import as_messages

_GENERATION = re.compile(r"{%-?\s*generation\s*-?%}")


@dataclass
class Example:
    """One token sequence: `mask[t]` says whether token t is trained on (predicted from tokens < t)."""

    ids: np.ndarray  # int64, shape [T]
    mask: np.ndarray  # bool, shape [T]; mask[0] is always False

    def __len__(self) -> int:
        return len(self.ids)


def has_generation_markers(tokenizer) -> bool:
    template = tokenizer.chat_template
    return isinstance(template, str) and bool(_GENERATION.search(template))


def _template_ids(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_generation_prompt,
                                        return_dict=True)
    return list(out["input_ids"])


def render_conversation(tokenizer, messages: list[dict], where: str) -> Example:
    """Token ids of a conversation and a mask over its assistant turns."""
    if not messages:
        raise SchemaError(f"{where}: the conversation is empty; expected at least one user and one assistant message")
    if not any(m.get("role") == "assistant" for m in messages):
        raise SchemaError(f"{where}: the conversation has no assistant message, so there is nothing to train on")
    if tokenizer.chat_template is None:
        raise SchemaError(f"{where}: the tokenizer has no chat template, so message lists cannot be rendered; "
                          "use prompt/completion strings or a tokenizer with a chat template")
    if has_generation_markers(tokenizer):
        out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True)
        ids = np.asarray(out["input_ids"], dtype=np.int64)
        mask = np.asarray(out["assistant_masks"], dtype=bool)
    else:
        ids, mask = _prefix_mask(tokenizer, messages, where)
    mask[:1] = False
    return Example(ids, mask)


def _prefix_mask(tokenizer, messages: list[dict], where: str) -> tuple[np.ndarray, np.ndarray]:
    """Fallback for templates without `{% generation %}`: each assistant turn trains on the tokens it adds
    after the generation prompt, minus trailing whitespace-only tokens (template formatting)."""
    ids = np.asarray(_template_ids(tokenizer, messages), dtype=np.int64)
    mask = np.zeros(len(ids), dtype=bool)
    for i, message in enumerate(messages):
        if message.get("role") != "assistant":
            continue
        start = len(_template_ids(tokenizer, messages[:i], add_generation_prompt=True))
        upto = _template_ids(tokenizer, messages[: i + 1])
        if list(ids[: len(upto)]) != upto:
            raise SchemaError(f"{where}: the chat template renders turn {i} differently inside the full conversation, "
                              "so assistant tokens cannot be located; use a template with {% generation %} markers")
        end = len(upto)
        while end > start and not tokenizer.decode(ids[end - 1 : end]).strip():
            end -= 1
        mask[start:end] = True
    return ids, mask


def render_sft(tokenizer, row: dict, where: str) -> Example:
    """An SFT record (`messages`, or `prompt` + `completion`) as ids and an assistant-only mask."""
    if "messages" in row and row["messages"] is not None:
        return render_conversation(tokenizer, as_messages(row["messages"], "user", where), where)
    prompt, completion = row.get("prompt"), row.get("completion")
    if completion is None:
        raise SchemaError(f"{where}: expected \"messages\" or \"prompt\" and \"completion\"; \"completion\" is missing")
    if tokenizer.chat_template is None and isinstance(prompt, str) and isinstance(completion, str):
        return _plain_pair(tokenizer, prompt, completion)
    messages = as_messages(prompt, "user", where) if prompt is not None else []
    return render_conversation(tokenizer, messages + as_messages(completion, "assistant", where), where)


def _plain_pair(tokenizer, prompt: str, completion: str) -> Example:
    """Without a chat template: prompt text, then completion text and EOS; the loss is on the completion."""
    head = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    tail = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = np.asarray(head + tail, dtype=np.int64)
    mask = np.zeros(len(ids), dtype=bool)
    mask[max(len(head), 1):] = True
    return Example(ids, mask)


def render_preference(tokenizer, row: dict, where: str) -> tuple[Example, Example]:
    """(chosen, rejected) sequences; each mask covers only the final assistant turn."""
    for field in ("chosen", "rejected"):
        if row.get(field) is None:
            raise SchemaError(f"{where}: \"{field}\" is missing; a preference row needs prompt, chosen and rejected")
    chosen = as_messages(row["chosen"], "assistant", where)
    rejected = as_messages(row["rejected"], "assistant", where)
    if row.get("prompt") is not None:
        prompt = as_messages(row["prompt"], "user", where)
    else:  # implicit prompt: both conversations share everything but their last message
        if len(chosen) < 2 or chosen[:-1] != rejected[:-1]:
            raise SchemaError(f"{where}: without a \"prompt\" column, chosen and rejected must be conversations "
                              "that share all messages but the last")
        prompt, chosen, rejected = chosen[:-1], chosen[-1:], rejected[-1:]
    if not prompt:
        raise SchemaError(f"{where}: the prompt is empty")
    prompt_len = len(_template_ids(tokenizer, prompt, add_generation_prompt=True))
    pair = []
    for completion in (chosen, rejected):
        ex = render_conversation(tokenizer, prompt + completion, where)
        ex.mask[:prompt_len] = False
        last = int(np.flatnonzero(ex.mask)[-1]) + 1 if ex.mask.any() else len(ex.ids)
        pair.append(Example(ex.ids[:last], ex.mask[:last]))
    return pair[0], pair[1]


def truncate(example: Example, max_length: int) -> Example:
    return Example(example.ids[:max_length], example.mask[:max_length])
