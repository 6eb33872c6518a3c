"""What the post-training filters read: the prompt side and the response side of a row.

`messages` rows split into `messages.prompt` (system and user turns) and `messages.response`
(assistant turns); plain columns split by name (`question`, `prompt`, `problem`... are prompts; `answer`,
`completion`, `content`, `chosen`, `rejected`... are responses). A `ResponseFilter` checks each response
field on its own (so a loop in `chosen` is not hidden by the `rejected` text after it) and a `PairFilter`
compares the prompt with the response.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
import pyarrow as pa

from curate.fields import field_text, split_fields
from curate.step import Decision, Filter, Step, split_decisions
from workbench.errors import InputError


def merge(decisions: list[Decision], more: list[Decision], field: str | None) -> None:
    """Keep the first drop per row; the detail names the field it came from."""
    for i in np.flatnonzero([d is not True and not (isinstance(d, tuple) and d[0]) for d in more]):
        if decisions[i] is True:
            d = more[i]
            detail = d[2] if len(d) > 2 else ""
            decisions[i] = (False, d[1], f"{field}: {detail}" if field else detail)


class ResponseFilter(Filter):
    """A filter on one text, applied to every response field (to the prompt fields when there is none);
    the `check` setting picks `prompt` or `both` sides instead."""

    def __init__(self, fields: list[str], check: str = "response"):
        super().__init__(fields)
        prompts, responses = split_fields(fields)
        sides = {"response": responses or prompts, "prompt": prompts, "both": prompts + responses}
        if check not in sides:
            raise InputError(f"filter {self.name!r}: check {check!r} must be response, prompt or both")
        if not sides[check]:
            raise InputError(f"filter {self.name!r}: check {check} but the fields {fields} hold no {check} side")
        self.targets = sides[check]

    @abstractmethod
    def decide(self, texts: pa.Array) -> list[Decision]:
        """One decision per text."""

    def decide_table(self, table: pa.Table) -> list[Decision]:
        """Decisions from every target field; subclasses add checks on other columns here."""
        decisions: list[Decision] = [True] * table.num_rows
        for name in self.targets:
            merge(decisions, self.decide(field_text(table, [name])), name if len(self.targets) > 1 else None)
        return decisions

    def process(self, table: pa.Table) -> tuple[pa.Table, pa.Table | None]:
        return split_decisions(table, self.decide_table(table))


class PairFilter(Step):
    """A filter comparing the prompt with the response of each row; subclasses implement `decide_pairs`."""

    def __init__(self, fields: list[str]):
        super().__init__(fields)
        self.prompt_fields, self.response_fields = split_fields(fields)
        if not self.prompt_fields or not self.response_fields:
            raise InputError(f"filter {self.name!r} compares a prompt with a response, but the fields {fields} "
                             "hold only one side; use `messages`, or a prompt and a response column "
                             "(e.g. --field question answer)")

    @abstractmethod
    def decide_pairs(self, prompts: pa.Array, responses: pa.Array) -> list[Decision]:
        """One decision per row."""

    def process(self, table: pa.Table) -> tuple[pa.Table, pa.Table | None]:
        prompts = field_text(table, self.prompt_fields)
        decisions: list[Decision] = [True] * table.num_rows
        for name in self.response_fields:
            merge(decisions, self.decide_pairs(prompts, field_text(table, [name])),
                  name if len(self.response_fields) > 1 else None)
        return split_decisions(table, decisions)
