"""Truncated reasoning: a trace cut off before it finished.

Signals, in order: the generation ledger says so (`finish_reason` column is `length`, as `wb distill`
writes it); a `<think>` block that never closes; nothing after `</think>`, or an empty answer next to a
non-empty `reasoning` column (the budget went on thinking);
and, when the data needs one, no final answer (`require_answer`: `boxed` for `\\boxed{...}`, `gsm8k` for
`#### 42`, or any regular expression; a row passes if one of them matches).
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.fields import field_text
from curate.filters.conversation import ResponseFilter
from curate.step import Decision
from workbench.errors import InputError

ANSWER_PATTERNS = {"boxed": r"\\boxed\s*\{", "gsm8k": r"####\s*\S"}


class TruncatedReasoningFilter(ResponseFilter):
    """Reasons: `truncated_reasoning:finish_length`, `:unclosed_think`, `:empty_answer`, `:no_final_answer`."""

    name = "truncated_reasoning"

    def __init__(self, fields: list[str], think_open: str = "<think>", think_close: str = "</think>",
                 require_answer: list[str] | str | None = None, finish_reason_column: str = "finish_reason",
                 check: str = "response"):
        super().__init__(fields, check)
        self.open, self.close = think_open, think_close
        self.finish_column = finish_reason_column
        wanted = [require_answer] if isinstance(require_answer, str) else list(require_answer or [])
        self.answer_patterns = [ANSWER_PATTERNS.get(p, p) for p in wanted]
        for pattern in self.answer_patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise InputError(f"truncated_reasoning: require_answer {pattern!r} is not a valid regular "
                                 f"expression ({exc}); use boxed, gsm8k or a regex") from None
        self.answer_regex = "|".join(f"(?:{p})" for p in self.answer_patterns)

    def decide_table(self, table: pa.Table) -> list[Decision]:
        decisions = super().decide_table(table)
        if "reasoning" in table.column_names:  # a distill run keeps the trace apart from the answer
            reasoning = pc.utf8_length(pc.utf8_trim_whitespace(pc.fill_null(
                table["reasoning"].combine_chunks().cast(pa.large_string()), "")))
            for name in self.targets:
                answer = pc.utf8_length(pc.utf8_trim_whitespace(field_text(table, [name])))
                empty = pc.and_(pc.greater(reasoning, 0), pc.equal(answer, 0)).to_numpy(zero_copy_only=False)
                for i in np.flatnonzero(empty):
                    decisions[i] = (False, "truncated_reasoning:empty_answer",
                                    f"{name} is empty after {reasoning[int(i)].as_py()} characters of reasoning")
        if self.finish_column in table.column_names:
            finish = table[self.finish_column].combine_chunks().cast(pa.string())
            for i in np.flatnonzero(pc.fill_null(pc.equal(finish, "length"), False).to_numpy(zero_copy_only=False)):
                decisions[i] = (False, "truncated_reasoning:finish_length",
                                f"the generation stopped at its token budget ({self.finish_column}=length)")
        return decisions

    def decide(self, texts: pa.Array) -> list[Decision]:
        texts = pc.fill_null(texts, "")
        opens = pc.count_substring(texts, self.open).to_numpy(zero_copy_only=False)
        closes = pc.count_substring(texts, self.close).to_numpy(zero_copy_only=False)
        unclosed = opens > closes
        after = pc.match_substring_regex(texts, re.escape(self.close) + r"\s*$").to_numpy(zero_copy_only=False)
        empty_answer = ~unclosed & (closes > 0) & after
        no_answer = np.zeros(len(texts), dtype=bool)
        if self.answer_regex:
            no_answer = ~pc.match_substring_regex(texts, self.answer_regex).to_numpy(zero_copy_only=False)
        decisions: list[Decision] = [True] * len(texts)
        checks = [(no_answer, "no_final_answer", lambda i: f"no final answer matching {self.answer_patterns}"),
                  (empty_answer, "empty_answer", lambda i: f"nothing after {self.close}"),
                  (unclosed, "unclosed_think", lambda i: f"{self.open} opened {opens[i]} times, closed {closes[i]}")]
        for mask, rule, detail in checks:  # later checks win: they are the more specific cause
            for i in np.flatnonzero(mask):
                decisions[i] = (False, f"truncated_reasoning:{rule}", detail(i))
        return decisions
