"""Rendering records to ids and assistant-only masks, and the errors bad records get."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from trainers.records import load_rendered
from trainers.render import has_generation_markers, render_preference, render_sft
from workbench.errors import SchemaError

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4"},
    {"role": "user", "content": "And 3+3?"},
    {"role": "assistant", "content": "It is 6."},
]


def _trained_text(tokenizer, ex) -> str:
    return tokenizer.decode(ex.ids[ex.mask])


def test_mask_covers_exactly_the_assistant_turns(tiny_tokenizer):
    ex = render_sft(tiny_tokenizer, {"messages": CONVERSATION}, "r")
    assert _trained_text(tiny_tokenizer, ex) == "4<|im_end|>It is 6.<|im_end|>"
    assert not ex.mask[0]


def test_fallback_without_generation_markers_gives_the_same_mask(tiny_tokenizer):
    plain = copy.deepcopy(tiny_tokenizer)
    plain.chat_template = tiny_tokenizer.chat_template.replace("{%- generation -%}", "").replace(
        "{%- endgeneration -%}", "")
    assert has_generation_markers(tiny_tokenizer) and not has_generation_markers(plain)
    marked = render_sft(tiny_tokenizer, {"messages": CONVERSATION}, "r")
    fallback = render_sft(plain, {"messages": CONVERSATION}, "r")
    assert np.array_equal(marked.ids, fallback.ids)
    assert np.array_equal(marked.mask, fallback.mask)


def test_prompt_completion_equals_the_same_conversation(tiny_tokenizer):
    pc = render_sft(tiny_tokenizer, {"prompt": "What is 2+2?", "completion": "4"}, "r")
    msgs = render_sft(tiny_tokenizer, {"messages": CONVERSATION[1:3]}, "r")
    assert np.array_equal(pc.ids, msgs.ids) and np.array_equal(pc.mask, msgs.mask)


def test_preference_masks_only_the_final_turn(tiny_tokenizer):
    row = {"prompt": "Is the sky blue?", "chosen": "Yes.", "rejected": "No, it is green."}
    chosen, rejected = render_preference(tiny_tokenizer, row, "r")
    assert _trained_text(tiny_tokenizer, chosen) == "Yes.<|im_end|>"
    assert _trained_text(tiny_tokenizer, rejected) == "No, it is green.<|im_end|>"
    implicit = {"chosen": [{"role": "user", "content": "Is the sky blue?"}, {"role": "assistant", "content": "Yes."}],
                "rejected": [{"role": "user", "content": "Is the sky blue?"},
                             {"role": "assistant", "content": "No, it is green."}]}
    c2, r2 = render_preference(tiny_tokenizer, implicit, "r")
    assert np.array_equal(c2.ids, chosen.ids) and np.array_equal(r2.mask, rejected.mask)


def test_empty_conversation_is_a_clear_error(tmp_path, tiny_tokenizer):
    path = tmp_path / "sft.jsonl"
    path.write_text(json.dumps({"messages": CONVERSATION}) + "\n" + json.dumps({"messages": []}) + "\n")
    with pytest.raises(SchemaError, match=r"sft.jsonl: row 2: \"messages\" must hold at least one message"):
        load_rendered(str(path), "sft", lambda row, where: render_sft(tiny_tokenizer, row, where))
    with pytest.raises(SchemaError, match="r: the conversation is empty"):
        render_sft(tiny_tokenizer, {"messages": []}, "r")
    with pytest.raises(SchemaError, match="no assistant message"):
        render_sft(tiny_tokenizer, {"messages": CONVERSATION[:2]}, "r")


def test_preference_row_missing_rejected_is_a_clear_error(tmp_path, tiny_tokenizer):
    path = tmp_path / "pairs.jsonl"
    rows = [{"prompt": "a", "chosen": "b", "rejected": "c"}, {"prompt": "a", "chosen": "b"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(SchemaError, match=r"pairs.jsonl: row 2: \"rejected\" must be a string; got null"):
        load_rendered(str(path), "preference", lambda row, where: render_preference(tiny_tokenizer, row, where))
    with pytest.raises(SchemaError, match=r"r: \"rejected\" is missing"):
        render_preference(tiny_tokenizer, rows[1], "r")


def test_wrong_record_kind_names_the_columns(tmp_path, tiny_tokenizer):
    path = tmp_path / "qa.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    with pytest.raises(SchemaError, match="expected SFT messages records.*--prompt-field question --completion-field answer"):
        load_rendered(str(path), "sft", lambda row, where: render_sft(tiny_tokenizer, row, where))


def test_importing_the_commands_loads_no_torch():
    import subprocess
    import sys

    code = ("import sys; from workbench.cli import build_parser; "
            "[build_parser(('train', t)) for t in ('sft', 'dpo', 'grpo', 'opd')]; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
