"""Conversation shape: empty turns, roles out of order, too few or too many turns.

On `messages` rows the role sequence is coded as letters (s system, u user, a assistant, t tool) and
checked with one regular expression per batch: system turns first, then user and assistant alternating,
tool turns only between assistant turns, ending on an assistant turn unless `require_response: false`.
On plain columns (question/answer, prompt/completion...) a turn is a field, and only emptiness is checked.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.fields import field_text
from curate.step import Decision, Step, split_decisions
from workbench.errors import InputError

ROLE_LETTERS = {"system": "s", "developer": "s", "user": "u", "assistant": "a", "tool": "t", "function": "t"}
ORDER = r"^s*u(a(t+a)*u)*(a(t+a)*)?$"


class TurnsFilter(Step):
    """Reasons: `turns:empty_turn`, `:unknown_role`, `:role_order`, `:no_response`, `:too_few`, `:too_many`.

    Turn counts exclude system turns."""

    name = "turns"

    def __init__(self, fields: list[str], min_turns: int = 2, max_turns: int | None = None,
                 require_response: bool = True, allow_empty: bool = False):
        super().__init__(fields)
        if min_turns < 0 or (max_turns is not None and max_turns < min_turns):
            raise InputError(f"turns: need 0 <= min_turns <= max_turns, got {min_turns} and {max_turns}")
        self.min_turns, self.max_turns = min_turns, max_turns
        self.require_response = require_response
        self.allow_empty = allow_empty

    def process(self, table: pa.Table) -> tuple[pa.Table, pa.Table | None]:
        return split_decisions(table, self.decide_rows(table))

    def decide_rows(self, table: pa.Table) -> list[Decision]:
        """One decision per row of `table` (also used on rows the input validator refused, see pipeline)."""
        if any(f == "messages" or f.startswith("messages.") for f in self.fields):
            return self.check_messages(table["messages"].combine_chunks())
        decisions: list[Decision] = [True] * table.num_rows
        if not self.allow_empty:
            for name in self.fields:
                empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(field_text(table, [name]))), 0)
                for i in np.flatnonzero(empty.to_numpy(zero_copy_only=False)):
                    if decisions[i] is True:
                        decisions[i] = (False, "turns:empty_turn", f"{name} is empty")
        return decisions

    def check_messages(self, messages: pa.Array) -> list[Decision]:
        import polars as pl

        m = pl.element()
        role = m.struct.field("role").fill_null("")
        frame = pl.from_arrow(pa.table({"m": messages})).select(
            roles=pl.col("m").list.eval(role.replace_strict(ROLE_LETTERS, default="x")).list.join("").fill_null(""),
            empty=pl.col("m").list.eval(m.struct.field("content").fill_null("").str.strip_chars().str.len_chars() == 0)
            .list.arg_max().fill_null(-1),
            any_empty=pl.col("m").list.eval(m.struct.field("content").fill_null("").str.strip_chars()
                                            .str.len_chars() == 0).list.any().fill_null(False),
        )
        roles = frame["roles"].to_arrow().cast(pa.large_string())
        codes = roles.to_pylist()
        turns = np.array([len(c) - c.count("s") for c in codes])
        bad_order = ~pc.match_substring_regex(roles, ORDER).to_numpy(zero_copy_only=False)
        ends_on_answer = pc.ends_with(roles, "a").to_numpy(zero_copy_only=False)
        unknown = pc.match_substring(roles, "x").to_numpy(zero_copy_only=False)
        empty = frame["any_empty"].to_numpy() & (not self.allow_empty)
        first_empty = frame["empty"].to_numpy()
        checks = [  # first match wins, from the most basic fault
            (turns == 0, "empty_turn", lambda i: "no turns"),
            (unknown, "unknown_role", lambda i: f"roles {codes[i]} (x = not system/user/assistant/tool)"),
            (empty, "empty_turn", lambda i: f"turn {first_empty[i]} has no content"),
            (bad_order, "role_order", lambda i: f"roles in order {codes[i]} (s system, u user, a assistant, t tool)"),
            (~ends_on_answer & self.require_response, "no_response", lambda i: "the last turn is not the assistant's"),
            (turns < self.min_turns, "too_few", lambda i: f"{turns[i]} turns < {self.min_turns}"),
            (turns > (self.max_turns if self.max_turns is not None else np.inf), "too_many",
             lambda i: f"{turns[i]} turns > {self.max_turns}"),
        ]
        decisions: list[Decision] = [True] * len(codes)
        for mask, rule, detail in checks:
            for i in np.flatnonzero(mask):
                if decisions[i] is True:
                    decisions[i] = (False, f"turns:{rule}", detail(i))
        return decisions
