"""Read prompts from any source into a table of (prompt_id, prompt messages, prompt_hash, answer, tests).

A source has a `prompt` column (a string or a list of {role, content} messages) or names its question
column with `--prompt-field` (GSM8K: `question`). `--answer-field` and `--tests-field` carry the reference
answer and code tests to the verifiers. Ids come from an `id` column, else the 0-based row number.
`question_hook` is the seam where curate/'s question dedup and decontamination plug in.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pyarrow as pa

from workbench.errors import InputError, SchemaError
from workbench.io import open_source
from workbench.records import as_messages
from workbench.schemas import prompt_alias

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES = pa.list_(MESSAGE)

# A function (prompts table) -> (kept table, {drop reason: count}); None keeps every question.
# curate/ (question dedup/decontamination, by another engineer) is meant to be wired in here.
QuestionHook = Callable[[pa.Table], tuple[pa.Table, dict[str, int]]]


def messages_hash(messages: list[dict]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def prompt_messages(value: object, system: str | None, where: str) -> list[dict]:
    """A prompt cell as {role, content} string messages (the MESSAGES schema), `system` first when given."""
    try:
        messages = as_messages(value, "user", where, system)
    except SchemaError as exc:
        raise InputError(str(exc)) from None
    if not messages:
        raise InputError(f"{where}: expected a string or a list of {{role, content}} messages, got []")
    return [{"role": str(m["role"]), "content": str(m.get("content") or "")} for m in messages]


def load_prompts(spec: str, prompt_field: str | None = None, answer_field: str | None = None,
                 tests_field: str | None = None, system: str | None = None, limit: int | None = None,
                 question_hook: QuestionHook | None = None) -> tuple[pa.Table, dict[str, int], object]:
    """Return (prompts table, dropped counts, the Source); raise InputError naming file/row/field."""
    source = open_source(spec)
    schema = source.schema()
    field = prompt_field or ("prompt" if "prompt" in schema.names else None)
    if field is None or field not in schema.names:
        hint = prompt_alias(schema)
        extra = f"; try --prompt-field {hint}" if hint else ""
        raise InputError(f"{spec}: no column {field or 'prompt'!r} (columns: {', '.join(schema.names)}){extra}")
    for name, flag in ((answer_field, "--answer-field"), (tests_field, "--tests-field")):
        if name and name not in schema.names:
            raise InputError(f"{spec}: {flag} {name!r} is not a column (columns: {', '.join(schema.names)})")
    ids, prompts, hashes, answers, tests = [], [], [], [], []
    has_id = "id" in schema.names
    for path, first, table in source.iter_rows_with_file():
        cols = table.to_pydict()
        for j, value in enumerate(cols[field]):
            row = first + j
            if value is None:
                raise InputError(f"{path.name}: row {row + 1}: field {field!r} is empty")
            messages = prompt_messages(value, system, f"{path.name}: row {row + 1}: field {field!r}")
            ids.append(str(cols["id"][j]) if has_id and cols["id"][j] is not None else str(len(ids)))
            prompts.append(messages)
            hashes.append(messages_hash(messages))
            answers.append(None if not answer_field or cols[answer_field][j] is None else str(cols[answer_field][j]))
            tests.append(None if not tests_field or cols[tests_field][j] is None else str(cols[tests_field][j]))
            if limit is not None and len(ids) >= limit:
                break
        if limit is not None and len(ids) >= limit:
            break
    if len(set(ids)) != len(ids):
        raise InputError(f"{spec}: the `id` column has duplicate values; ids must be unique per prompt")
    table = pa.table({"prompt_id": pa.array(ids, pa.string()), "prompt": pa.array(prompts, MESSAGES),
                      "prompt_hash": pa.array(hashes, pa.string()), "answer": pa.array(answers, pa.string()),
                      "tests": pa.array(tests, pa.string())})
    dropped: dict[str, int] = {}
    if question_hook is not None:
        table, dropped = question_hook(table)
    return table, dropped, source
