"""Code that does not parse: fenced Python blocks in a response are parsed with `ast.parse`.

Only rows holding a fence are looked at (found vectorised). Blocks tagged `python`, `py`, `python3`
(and untagged ones with `untagged: true`) are parsed; doctest blocks (`>>> ` lines) are parsed from
their source lines. An odd number of fences means a block never closed, usually a truncated answer.
"""

from __future__ import annotations

import ast
import re
import textwrap
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.filters.conversation import ResponseFilter
from curate.step import Decision

FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^[ \t]*```", re.S | re.M)
FENCE_LINE = re.compile(r"^[ \t]*```", re.M)
PYTHON_TAGS = frozenset(("python", "py", "python3", "py3"))


def python_source(block: str) -> str:
    """The block as Python source: dedented, and a doctest reduced to its `>>>`/`...` lines."""
    block = textwrap.dedent(block)
    lines = block.splitlines()
    if any(line.lstrip().startswith(">>>") for line in lines):
        lines = [line.lstrip()[4:] for line in lines if line.lstrip().startswith((">>>", "..."))]
        block = "\n".join(lines)
    return block


def syntax_error(source: str) -> str | None:
    """A one-line description of the first syntax error, or None if the source parses."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(source)
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        return str(exc) or type(exc).__name__
    return None


class CodeSyntaxFilter(ResponseFilter):
    """Reasons: `code_syntax:python` (a block does not parse) and `code_syntax:unclosed_fence`."""

    name = "code_syntax"

    def __init__(self, fields: list[str], untagged: bool = False, check_unclosed: bool = True,
                 check: str = "response"):
        super().__init__(fields, check)
        self.untagged = untagged
        self.check_unclosed = check_unclosed

    def decide(self, texts: pa.Array) -> list[Decision]:
        texts = pc.fill_null(texts, "")
        decisions: list[Decision] = [True] * len(texts)
        for i in np.flatnonzero(pc.match_substring(texts, "```").to_numpy(zero_copy_only=False)):
            decisions[i] = self.check(texts[int(i)].as_py())
        return decisions

    def check(self, text: str) -> Decision:
        for n, match in enumerate(FENCE.finditer(text), start=1):
            tag = match.group(1).lower()
            if tag in PYTHON_TAGS or (self.untagged and not tag):
                error = syntax_error(python_source(match.group(2)))
                if error:
                    return False, "code_syntax:python", f"block {n} ({tag or 'untagged'}), {error}"
        if self.check_unclosed and len(FENCE_LINE.findall(text)) % 2:
            return False, "code_syntax:unclosed_fence", "a ``` fence is opened and never closed"
        return True
