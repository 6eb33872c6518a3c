"""Reward functions for `wb train grpo|opd`, parsed from `--reward NAME[:WEIGHT]` and combined by weight.

Built in:
- `math`: 1 when the completion's final answer matches the row's `answer` (`llm.verify.math.check_math`:
  the last `####`/`\\boxed{}`/"the answer is", else the last stated number; a restated question, a hedge
  or a retraction is 0), else 0; rows without an answer give None.
- `exact`: 1 when the final answer (after `####`, else the whole text) equals the row's `answer`'s as a
  string (`0011` is not `011`), else 0.
- `format`: 1 when the completion matches `format_pattern` (a regex, searched), else 0.
- `length`: max(0, 1 - |tokens - length_target| / length_target).
- `overlong`: DAPO's soft overlong penalty with L = max_new_tokens, C = overlong_buffer: 0 while
  |o| <= L - C, (L - C - |o|) / C inside the buffer, -1 beyond.
- `package.module:function`: a user function called as `f(prompts=..., completions=..., completion_ids=...,
  **columns)` (every extra dataset column by name, one value per completion), returning one float or None
  per completion. None (no verdict) counts as 0 in the weighted sum, as TRL's nansum.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from workbench.errors import InputError

BUILTIN = ("math", "exact", "format", "length", "overlong")


@dataclass
class RewardSpec:
    name: str
    weight: float
    fn: Callable[..., list]


def parse_reward(spec: str, options) -> RewardSpec:
    """`NAME[:WEIGHT]` or `module:function[:WEIGHT]` -> a RewardSpec; InputError for an unknown name or a
    user function that cannot be imported."""
    name, weight = spec, 1.0
    head, _, tail = spec.rpartition(":")
    if head:
        try:
            name, weight = head, float(tail)
        except ValueError:
            name = spec
    if name in BUILTIN:
        return RewardSpec(name, weight, _builtin(name, options))
    if ":" not in name:
        raise InputError(f"--reward {spec}: unknown reward {name!r}; expected one of {', '.join(BUILTIN)} "
                         "or a user function as package.module:function")
    from llm.verify.user import import_function

    fn = import_function(name, "--reward")
    return RewardSpec(name, weight, fn)


def _builtin(name: str, o) -> Callable[..., list]:
    if name in ("math", "exact"):
        return _verdict_reward(name)
    if name == "format":
        pattern = re.compile(o.format_pattern, re.DOTALL)
        return lambda completions, **_: [float(bool(pattern.search(c))) for c in completions]
    if name == "length":
        target = max(1, o.length_target)
        return lambda completion_ids, **_: [max(0.0, 1 - abs(len(c) - target) / target) for c in completion_ids]
    return lambda completion_ids, **_: [soft_overlong(len(c), o.max_new_tokens, o.overlong_buffer)
                                        for c in completion_ids]


def _verdict_reward(name: str) -> Callable[..., list]:
    """A 0/1 reward from an `llm.verify` verifier (`math` or `exact`) against the row's `answer`."""
    if name == "math":
        from llm.verify.math import check_math as check
    else:
        from llm.verify.exact import check_exact as check

    def reward(completions, answer=None, prompts=None, **_):
        if answer is None:
            raise ValueError(f"the {name} reward needs an `answer` column in the prompts")
        if name == "math" and prompts is not None:  # a restated question earns nothing
            from llm.verify.math import prompt_text

            return [None if a is None else float(bool(check(c, str(a), prompt_text(p))[0]))
                    for p, c, a in zip(prompts, completions, answer, strict=True)]
        return [None if a is None else float(bool(check(c, str(a))[0])) for c, a in zip(completions, answer, strict=True)]

    return reward


def soft_overlong(length: int, max_len: int, buffer: int) -> float:
    """DAPO's soft overlong punishment (see the module docstring)."""
    free = max_len - buffer
    if length <= free:
        return 0.0
    return max(-1.0, (free - length) / max(buffer, 1))


def score(specs: list[RewardSpec], prompts: list, completions: list[str], completion_ids: list[list[int]],
          columns: dict[str, list]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(weighted total [n], {name: raw rewards [n] with NaN for None}). A user function that raises or
    returns the wrong thing is an InputError naming it."""
    n = len(completions)
    per: dict[str, np.ndarray] = {}
    for spec in specs:
        try:
            out = spec.fn(prompts=prompts, completions=completions, completion_ids=completion_ids, **columns)
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - report which reward failed, and how
            raise InputError(f"reward {spec.name!r} raised {type(exc).__name__}: {exc}") from None
        if not isinstance(out, list | tuple | np.ndarray) or len(out) != n:
            got = f"{len(out)} values" if hasattr(out, "__len__") else type(out).__name__
            raise InputError(f"reward {spec.name!r} must return a list of {n} numbers (one per completion); got {got}")
        try:
            per[spec.name] = np.array([math.nan if v is None else float(v) for v in out], dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"reward {spec.name!r} returned a value that is not a number or None") from None
    total = np.zeros(n)
    for spec in specs:
        total += spec.weight * np.nan_to_num(per[spec.name], nan=0.0)
    return total, per
