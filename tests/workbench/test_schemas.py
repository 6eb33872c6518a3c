"""Record-kind detection and the validator's messages: file, 1-based row, field, expectation."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from workbench.errors import SchemaError
from workbench.io import open_source
from workbench.schemas import detect_kind, validate_table, validate_tables


def chat(*roles):
    return [{"role": r, "content": f"{r} says hi"} for r in roles]


@pytest.mark.parametrize(("columns", "kind"), [
    (["id", "text", "source"], "text"),
    (["id", "messages"], "sft"),
    (["prompt", "completion"], "sft"),
    (["prompt", "chosen", "rejected"], "preference"),
    (["chosen", "rejected"], "preference"),
    (["id", "prompt", "answer"], "rl_prompts"),
    (["question", "answer"], "unknown"),
])
def test_detect_kind(columns, kind):
    assert detect_kind(pa.schema([(c, pa.string()) for c in columns])) == kind


def test_valid_records_of_each_kind_pass():
    validate_table(pa.Table.from_pylist([{"text": "a"}]), "text", "t")
    validate_table(pa.Table.from_pylist([{"messages": chat("system", "user", "assistant")}]), "sft", "t")
    validate_table(pa.Table.from_pylist([{"prompt": "p", "completion": "c"}]), "sft", "t")
    validate_table(pa.Table.from_pylist(
        [{"prompt": chat("user"), "chosen": chat("assistant"), "rejected": chat("assistant")}]), "preference", "t")
    validate_table(pa.Table.from_pylist([{"chosen": "a", "rejected": "b"}]), "preference", "t")
    validate_table(pa.Table.from_pylist([{"prompt": chat("user"), "answer": "4"}]), "rl_prompts", "t")


def test_bad_role_names_file_row_index_and_value(tmp_path):
    rows = [{"messages": chat("user", "assistant")} for _ in range(16)]
    rows.append({"messages": chat("user", "assistant", "bot")})
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(SchemaError) as err:
        validate_tables(open_source(path).iter_rows_with_file(), "sft")
    assert str(err.value) == ('train.jsonl: row 17: "messages"[2].role must be one of system, user, '
                              'assistant, tool; got "bot"')


def test_row_numbers_count_across_batches(monkeypatch, tmp_path):
    from workbench import io

    monkeypatch.setattr(io, "BATCH_ROWS", 4)
    rows = [{"text": f"row {i}"} for i in range(10)] + [{"text": None}]
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(SchemaError, match=r'^corpus.jsonl: row 11: "text" must be a string; got null$'):
        validate_tables(open_source(path).iter_rows_with_file(), "text")


@pytest.mark.parametrize(("rows", "kind", "message"), [
    ([{"text": 5}], "text", 'column "text" must hold strings; got int64'),
    ([{"body": "x"}], "text", 'missing column "text"'),
    ([{"messages": "hello"}], "sft", 'column "messages" must hold lists of {role, content} messages; got string'),
    ([{"messages": chat("user")}, {"messages": []}], "sft", 'row 2: "messages" must hold at least one message; got []'),
    ([{"messages": chat("user")}, {"messages": None}], "sft", 'row 2: "messages" must be a list of messages; got null'),
    ([{"messages": [{"role": "user", "content": None}]}], "sft", 'row 1: "messages"[0].content must be a string; got null'),
    ([{"messages": [{"role": None, "content": "x"}]}], "sft", 'row 1: "messages"[0].role must be one of system, user, assistant, tool; got null'),
    ([{"messages": [{"speaker": "user", "content": "x"}]}], "sft", '"messages" items must be {role, content} objects'),
    ([{"prompt": "p", "chosen": "c", "rejected": None}], "preference", 'row 1: "rejected" must be a string; got null'),
    ([{"prompt": "p", "chosen": 1.5, "rejected": "r"}], "preference", 'column "chosen" must hold strings or lists of messages; got double'),
    ([{"prompt": None}], "rl_prompts", 'row 1: "prompt" must be a string; got null'),
])
def test_each_schema_error(rows, kind, message):
    with pytest.raises(SchemaError) as err:
        validate_table(pa.Table.from_pylist(rows), kind, "f.jsonl")
    assert str(err.value).startswith("f.jsonl: ")
    assert message in str(err.value)


def test_sliced_tables_report_rows_relative_to_the_file():
    table = pa.Table.from_pylist([{"messages": chat("user")}] * 5 + [{"messages": chat("user", "robot")}])
    with pytest.raises(SchemaError, match=r'row 6: "messages"\[1\]\.role'):
        validate_table(table.slice(4), "sft", "f", first_row=4)


def test_tool_messages_may_have_null_content_with_tool_calls():
    messages = [{"role": "user", "content": "weather?", "tool_calls": None},
                {"role": "assistant", "content": None, "tool_calls": [{"name": "get_weather"}]}]
    validate_table(pa.Table.from_pylist([{"messages": messages}]), "sft", "t")


def test_sft_conversation_without_an_assistant_turn():
    table = pa.Table.from_pylist([{"messages": chat("user", "assistant")}, {"messages": chat("system", "user")}])
    with pytest.raises(SchemaError, match=r'row 2: "messages" has no assistant message to learn from'):
        validate_table(table, "sft", "f.jsonl")
