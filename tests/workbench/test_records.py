"""The one set of record-shape helpers: message-list columns, values as messages, messages as text."""

from __future__ import annotations

import pyarrow as pa
import pytest

from workbench.errors import SchemaError
from workbench.records import as_messages, is_messages, message_text

CHAT = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"}]


def test_is_messages_needs_a_list_of_structs_with_content():
    assert is_messages(pa.array([CHAT]).type)
    assert is_messages(pa.large_list(pa.struct([("role", pa.string()), ("content", pa.string())])))
    assert not is_messages(pa.string())
    assert not is_messages(pa.list_(pa.string()))
    assert not is_messages(pa.list_(pa.struct([("role", pa.string()), ("text", pa.string())])))


def test_as_messages_wraps_strings_keeps_lists_and_adds_a_system_turn_once():
    assert as_messages("hi") == [{"role": "user", "content": "hi"}]
    assert as_messages("ok", "assistant") == [{"role": "assistant", "content": "ok"}]
    assert as_messages("hi", system="be brief") == [{"role": "system", "content": "be brief"},
                                                     {"role": "user", "content": "hi"}]
    assert as_messages(CHAT, system="other") == CHAT  # a system turn already there is kept, not doubled
    with_tool = [{"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}]
    assert as_messages(with_tool) == [{"role": "assistant", "tool_calls": [{"id": "1"}]}]


@pytest.mark.parametrize("value", [3, None, [{"content": "no role"}], ["text"], {"role": "user"}])
def test_as_messages_names_where_a_bad_value_came_from(value):
    with pytest.raises(SchemaError, match=r"^data.jsonl: row 7: expected a string or a list of \{role, content\}"):
        as_messages(value, where="data.jsonl: row 7")


def test_message_text_joins_the_turns_of_the_roles_asked_for():
    assert message_text(CHAT) == "be brief\n\n2+2?\n\n4"
    assert message_text(CHAT, ("user",)) == "2+2?"
    assert message_text(CHAT, ("system", "user"), sep="\n") == "be brief\n2+2?"
    assert message_text("plain") == "plain" and message_text(None) == ""
    assert message_text([{"role": "user", "content": None}]) == ""
