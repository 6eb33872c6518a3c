"""Which text a step looks at: a column, several columns, or the rendered turns of `messages` rows.

Field names are column names, plus `messages.prompt` (system and user turns), `messages.response`
(assistant turns) and `messages` (all turns) for conversation rows. `split_fields` says which fields
are the prompt side and which the response side (post-training filters, `wb select`). Rows also get
lineage here: a stable `id` (`<file stem>-<row index>`) and a `source` when the input has none.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from workbench.errors import InputError
from workbench.io import row_ids, source_name
from workbench.records import is_messages

MESSAGE_PARTS = {"messages": None, "messages.prompt": False, "messages.response": True}

PROMPT_COLUMNS = frozenset(("prompt", "question", "problem", "instruction", "input", "query", "system",
                            "messages.prompt"))


def split_fields(fields: list[str]) -> tuple[list[str], list[str]]:
    """(prompt fields, response fields) of the fields a step was given."""
    prompts: list[str] = []
    responses: list[str] = []
    for name in fields:
        if name == "messages":
            prompts.append("messages.prompt")
            responses.append("messages.response")
        elif name in PROMPT_COLUMNS:
            prompts.append(name)
        else:
            responses.append(name)
    return prompts, responses


def default_fields(schema: pa.Schema) -> list[str]:
    """The fields a step reads when the user names none, by record kind."""
    names = schema.names
    if "text" in names:
        return ["text"]
    if "messages" in names:
        return ["messages"]
    for group in (["prompt", "chosen", "rejected"], ["prompt", "completion"], ["prompt", "content"],
                  ["question", "answer"],
                  ["problem", "solution"], ["prompt"], ["question"], ["problem"]):
        if all(g in names for g in group):
            return group
    raise InputError(f"no text column found (columns are {names}); name one with --field")


def check_fields(schema: pa.Schema, fields: list[str], where: str) -> None:
    """Raise `InputError` if a field is missing or does not hold text."""
    for name in fields:
        column = "messages" if name in MESSAGE_PARTS else name
        if column not in schema.names:
            raise InputError(f"{where}: no field {name!r}; columns are {schema.names}")
        kind = schema.field(column).type
        if name in MESSAGE_PARTS:
            if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)):
                raise InputError(f"{where}: field 'messages' holds {kind}, expected a list of {{role, content}}")
        elif not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)
                  or is_messages(kind)):
            raise InputError(f"{where}: field {name!r} holds {kind}, expected text")


def field_text(table: pa.Table, fields: list[str]) -> pa.Array:
    """One large_string per row: the named fields joined by newlines (nulls read as empty)."""
    parts = [_one_field(table, name) for name in fields]
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, pa.scalar("\n", pa.large_string()))


def _one_field(table: pa.Table, name: str) -> pa.Array:
    column = "messages" if name in MESSAGE_PARTS else name
    array = table[column].combine_chunks()
    if is_messages(array.type):
        return render_messages(array, MESSAGE_PARTS.get(name))
    if pa.types.is_null(array.type):
        return pa.array([""] * len(array), pa.large_string())
    return pc.fill_null(array.cast(pa.large_string()), "")


def render_messages(messages: pa.Array, assistant: bool | None) -> pa.Array:
    """Join the contents of each row's turns by newlines; `assistant` picks response (True) or prompt (False)."""
    import polars as pl

    frame = pl.from_arrow(pa.table({"m": messages}))
    element = pl.element()
    if assistant is None:
        picked = element.struct.field("content")
    else:
        is_assistant = element.struct.field("role") == "assistant"
        picked = element.filter(is_assistant if assistant else ~is_assistant).struct.field("content")
    rendered = frame.select(pl.col("m").list.eval(picked.fill_null("")).list.join("\n").fill_null(""))
    return rendered.to_arrow()["m"].combine_chunks().cast(pa.large_string())


def add_lineage(table: pa.Table, path: Path, first_row: int) -> pa.Table:
    """Add `id` (`<file stem>-<row index in file>`) and `source` (the file stem) when they are missing."""
    stem = source_name(path)
    if "id" not in table.column_names:
        table = table.append_column("id", pa.array(row_ids(path, first_row, table.num_rows), pa.string()))
    elif not pa.types.is_string(table.schema.field("id").type):
        table = table.set_column(table.column_names.index("id"), "id", table["id"].cast(pa.string()))
    if "source" not in table.column_names:
        table = table.append_column("source", pa.array([stem] * table.num_rows, pa.string()))
    return table
