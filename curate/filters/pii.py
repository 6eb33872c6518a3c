"""PII and secrets: emails, IPv4 addresses, phone numbers and credentials, found with RE2 patterns
run vectorised by Arrow. `PiiRedactor` replaces matches with placeholders (in plain text columns and in
every turn of `messages`); `PiiFilter` drops rows with a match instead (reason `pii:<kind>`)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.step import Decision, Filter, Step

# Secrets first so an email or number inside a credential does not split it.
PATTERNS: dict[str, tuple[str, str]] = {
    "secret": (r"-----BEGIN [A-Z ]*PRIVATE KEY-----|\bAKIA[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{36,}\b"
               r"|\bsk-[A-Za-z0-9_-]{20,}\b|\bxox[abprs]-[A-Za-z0-9-]{10,}\b"
               r"|(?i:\b(?:api[_-]?key|secret[_-]?key|access[_-]?token|password)\s*[:=]\s*['\"]?[A-Za-z0-9_/+=-]{12,})",
               "<SECRET>"),
    "email": (r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b", "<EMAIL>"),
    "ip_address": (r"\b(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
                   r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\b", "<IP_ADDRESS>"),
    "phone": (r"(?:\+\d{1,3}[\s.-]?)?(?:\(\d{3}\)\s?|\b\d{3}[\s.-])\d{3}[\s.-]\d{4}\b", "<PHONE>"),
}


def pii_counts(texts: pa.Array, kinds: list[str]) -> dict[str, np.ndarray]:
    """Matches of each kind per row."""
    return {k: pc.count_substring_regex(texts, PATTERNS[k][0]).to_numpy(zero_copy_only=False) for k in kinds}


def redact(texts: pa.Array, kinds: list[str]) -> pa.Array:
    for kind in kinds:
        pattern, placeholder = PATTERNS[kind]
        texts = pc.replace_substring_regex(texts, pattern, placeholder)
    return texts


class PiiFilter(Filter):
    name = "pii"

    def __init__(self, fields: list[str], kinds: list[str] | None = None):
        super().__init__(fields)
        self.kinds = list(kinds or PATTERNS)

    def decide(self, texts: pa.Array) -> list[Decision]:
        decisions: list[Decision] = [True] * len(texts)
        for kind, counts in pii_counts(texts, self.kinds).items():
            for i in np.flatnonzero(counts):
                if decisions[i] is True:
                    decisions[i] = (False, f"pii:{kind}", f"{counts[i]} {kind} match(es)")
        return decisions


class PiiRedactor(Step):
    """Rewrites the checked columns in place; counts redactions per kind in `redacted`."""

    name = "pii_redact"

    def __init__(self, fields: list[str], kinds: list[str] | None = None):
        super().__init__(fields)
        self.kinds = list(kinds or PATTERNS)
        self.redacted: Counter[str] = Counter()

    def process(self, table: pa.Table) -> tuple[pa.Table, None]:
        for column in dict.fromkeys("messages" if f.startswith("messages") else f for f in self.fields):
            array = table[column].combine_chunks()
            if pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
                new = self._redact_messages(array)
            else:
                new = self._redact_texts(array)
            table = table.set_column(table.column_names.index(column), column, new)
        return table, None

    def _redact_texts(self, texts: pa.Array) -> pa.Array:
        for kind, counts in pii_counts(texts, self.kinds).items():
            self.redacted[kind] += int(counts.sum())
        return redact(texts, self.kinds)

    def _redact_messages(self, messages: pa.Array) -> pa.Array:
        values = messages.values
        names = [f.name for f in values.type]
        children = [self._redact_texts(values.field(n)) if n == "content" else values.field(n) for n in names]
        struct = pa.StructArray.from_arrays(children, fields=list(values.type), mask=values.is_null())
        cls = pa.LargeListArray if pa.types.is_large_list(messages.type) else pa.ListArray
        return cls.from_arrays(messages.offsets, struct, mask=messages.is_null())

    def stats(self) -> dict:
        return {**super().stats(), "redacted": dict(self.redacted)}
