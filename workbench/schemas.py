"""The four record kinds every stage speaks, following TRL's dataset formats, and their validator.

- text corpus:  {id?, text, source?, domain?}
- sft:          {id?, messages: [{role, content}], reasoning?}  or  {prompt, completion}
- preference:   {id?, prompt?, chosen, rejected}  (strings or message lists; no prompt = implicit prompt)
- rl_prompts:   {id?, prompt, answer?, ...}  (extra columns reach reward functions by name)

Checks are vectorised over Arrow columns; the first problem is raised as a `SchemaError` naming the
file, the 1-based row and the field, e.g. `train.jsonl: row 17: "messages"[2].role must be one of
system, user, assistant, tool; got "bot"`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from workbench.errors import SchemaError

KINDS = ("text", "sft", "preference", "rl_prompts")
ROLES = ("system", "user", "assistant", "tool")
KIND_LABELS = {
    "text": "text corpus",
    "sft": "SFT messages",
    "preference": "preferences",
    "rl_prompts": "RL prompts",
    "unknown": "unknown",
}
# Column names that commonly hold a prompt in public datasets (GSM8K, MATH), offered as hints.
PROMPT_ALIASES = ("question", "problem", "instruction", "query", "input")


def detect_kind(schema: pa.Schema) -> str:
    """The record kind a schema holds, by its column names; 'unknown' when none fits."""
    names = set(schema.names)
    if {"chosen", "rejected"} <= names:
        return "preference"
    if "messages" in names or {"prompt", "completion"} <= names:
        return "sft"
    if "prompt" in names:
        return "rl_prompts"
    if "text" in names:
        return "text"
    return "unknown"


def prompt_alias(schema: pa.Schema) -> str | None:
    """A column that probably holds prompts when no `prompt` column exists (e.g. GSM8K's `question`)."""
    return next((name for name in PROMPT_ALIASES if name in schema.names), None)


def validate_table(table: pa.Table, kind: str, where: str | Path, first_row: int = 0) -> None:
    """Raise `SchemaError` at the first row of `table` that is not a valid `kind` record.

    `where` names the file in the message; `first_row` is the 0-based index of the table's first row
    in that file, so messages give the row number a user finds in their file.
    """
    check = _Checker(table, str(where), first_row)
    if kind == "text":
        check.string("text")
    elif kind == "sft":
        if "messages" in table.column_names:
            check.messages("messages", need_assistant=True)
        else:
            check.prompt_like("prompt")
            check.prompt_like("completion")
    elif kind == "preference":
        if "prompt" in table.column_names:
            check.prompt_like("prompt", allow_null=False)
        check.prompt_like("chosen")
        check.prompt_like("rejected")
    elif kind == "rl_prompts":
        check.prompt_like("prompt")
    else:
        raise SchemaError(f"{where}: unknown record kind {kind!r}; expected one of {', '.join(KINDS)}")


def validate_tables(tables: Iterable[tuple[Path, int, pa.Table]], kind: str) -> int:
    """Validate (file, first row, table) triples, as `Source.iter_rows_with_file` yields; return row count."""
    rows = 0
    for path, first_row, table in tables:
        validate_table(table, kind, path.name if isinstance(path, Path) else path, first_row)
        rows += table.num_rows
    return rows


class _Checker:
    def __init__(self, table: pa.Table, where: str, first_row: int):
        self.table = table
        self.where = where
        self.first_row = first_row

    def fail(self, row: int | None, message: str) -> None:
        at = f"{self.where}: row {self.first_row + row + 1}: " if row is not None else f"{self.where}: "
        raise SchemaError(at + message)

    def column(self, name: str) -> pa.Array:
        if name not in self.table.column_names:
            self.fail(None, f"missing column \"{name}\"; columns are {self.table.column_names}")
        return self.table[name].combine_chunks()

    def first_null(self, array: pa.Array) -> int | None:
        if array.null_count == 0:
            return None
        return int(np.flatnonzero(pc.is_null(array).to_numpy(zero_copy_only=False))[0])

    def string(self, name: str) -> None:
        array = self.column(name)
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type) or pa.types.is_null(array.type)):
            self.fail(None, f"column \"{name}\" must hold strings; got {array.type}")
        row = self.first_null(array)
        if row is not None:
            self.fail(row, f"\"{name}\" must be a string; got null")

    def prompt_like(self, name: str, allow_null: bool = False) -> None:
        """A string, or a list of {role, content} messages (TRL's conversational form)."""
        array = self.column(name)
        if pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
            self.messages(name)
        elif pa.types.is_string(array.type) or pa.types.is_large_string(array.type) or pa.types.is_null(array.type):
            if not allow_null:
                self.string(name)
        else:
            self.fail(None, f"column \"{name}\" must hold strings or lists of messages; got {array.type}")

    def messages(self, name: str, need_assistant: bool = False) -> None:
        array = self.column(name)
        if pa.types.is_null(array.type):
            self.fail(0 if len(array) else None, f"\"{name}\" must be a list of messages; got null")
        if not (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)):
            self.fail(None, f"column \"{name}\" must hold lists of {{role, content}} messages; got {array.type}")
        item = array.type.value_type
        if not pa.types.is_struct(item) or item.get_field_index("role") < 0 or item.get_field_index("content") < 0:
            self.fail(None, f"\"{name}\" items must be {{role, content}} objects; got {item}")
        row = self.first_null(array)
        if row is not None:
            self.fail(row, f"\"{name}\" must be a list of messages; got null")
        lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False)
        if (lengths == 0).any():
            self.fail(int(np.flatnonzero(lengths == 0)[0]), f"\"{name}\" must hold at least one message; got []")
        flat = array.flatten()
        parents = pc.list_parent_indices(array).to_numpy(zero_copy_only=False)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])

        def fail_at(k: int, message: str) -> None:
            row = int(parents[k])
            self.fail(row, f"\"{name}\"[{k - int(starts[row])}].{message}")

        roles = flat.field("role")
        roles = roles.cast(pa.string()) if pa.types.is_null(roles.type) else roles
        if not (pa.types.is_string(roles.type) or pa.types.is_large_string(roles.type)):
            self.fail(None, f"\"{name}\" roles must be strings; got {roles.type}")
        bad = pc.invert(pc.fill_null(pc.is_in(roles, value_set=pa.array(ROLES)), False))
        if pc.any(bad).as_py():
            k = int(np.flatnonzero(bad.to_numpy(zero_copy_only=False))[0])
            got = roles[k].as_py()
            fail_at(k, f"role must be one of {', '.join(ROLES)}; got {'null' if got is None else chr(34) + got + chr(34)}")
        contents = flat.field("content")
        contents = contents.cast(pa.string()) if pa.types.is_null(contents.type) else contents
        if pa.types.is_string(contents.type) or pa.types.is_large_string(contents.type):
            missing = pc.is_null(contents)
            if "tool_calls" in [f.name for f in flat.type]:
                missing = pc.and_(missing, pc.is_null(flat.field("tool_calls")))
            if pc.any(missing).as_py():
                fail_at(int(np.flatnonzero(missing.to_numpy(zero_copy_only=False))[0]), "content must be a string; got null")
        elif not pa.types.is_list(contents.type):
            self.fail(None, f"\"{name}\" contents must be strings; got {contents.type}")
        if need_assistant:  # an SFT conversation with no assistant turn has nothing to learn
            replies = np.bincount(parents, weights=pc.fill_null(pc.equal(roles, "assistant"), False).to_numpy(
                zero_copy_only=False), minlength=len(array))
            if (replies == 0).any():
                self.fail(int(np.flatnonzero(replies == 0)[0]), f"\"{name}\" has no assistant message to learn from")
