"""Record shapes every package shares: is a column a message list, a value as messages, messages as text.

TRL's conversational form is a list of `{role, content}` messages; plain rows hold a string. These three
helpers are the one place that decides how each shape is recognised and converted, so the inspector,
curation, prompt loading, trainers, judges and the app agree on it. They live in the kernel because the
kernel (`wb inspect`) and the app need them too.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from workbench.errors import SchemaError


def is_messages(kind: pa.DataType) -> bool:
    """Whether an Arrow type is a list of structs with a `content` field (a message list column)."""
    return (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and pa.types.is_struct(kind.value_type) \
        and kind.value_type.get_field_index("content") >= 0


def as_messages(value: object, role: str = "user", where: str = "", system: str | None = None) -> list[dict]:
    """A string as one `role` message; a list of message dicts as itself (keys whose value is None dropped, so
    tool calls and other fields pass through); `system` is put first when the messages have no system turn.
    Anything else, or a message without a role, raises `SchemaError` naming `where`."""
    if isinstance(value, str):
        messages = [{"role": role, "content": value}]
    elif isinstance(value, list) and all(isinstance(m, dict) and m.get("role") is not None for m in value):
        messages = [{k: v for k, v in m.items() if v is not None} for m in value]
    else:
        raise SchemaError(f"{where}: expected a string or a list of {{role, content}} messages; got {value!r:.60}")
    if system and (not messages or messages[0]["role"] != "system"):
        messages = [{"role": "system", "content": system}, *messages]
    return messages


def message_text(value: object, roles: Iterable[str] | None = None, sep: str = "\n\n") -> str:
    """A prompt or response as text: a string as is, a message list as the contents of its turns (only those
    of `roles` when given) joined by `sep`; None is ""."""
    if isinstance(value, list):
        wanted = set(roles) if roles is not None else None
        return sep.join(str(m.get("content") or "") for m in value
                        if isinstance(m, dict) and (wanted is None or m.get("role") in wanted))
    return "" if value is None else str(value)
