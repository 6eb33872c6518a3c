"""User verifiers and rewards named `package.module:function`, imported on demand.

A verifier is called once per batch as `f(prompts=[...], completions=[...], answer=[...])` (the prompt
messages, the generated texts and the reference answers, one per item) and returns one verdict per
item: True/False, a number (positive = correct), or None (no verdict). GRPO's user rewards are imported
by the same function.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from workbench.errors import InputError


def import_function(spec: str, flag: str) -> Callable:
    """The callable named by `package.module:function`; InputError (naming `flag`) when it cannot be had."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InputError(f"{flag} {spec}: expected package.module:function")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's module
        raise InputError(f"{flag} {spec}: cannot import module {module_name!r} ({type(exc).__name__}: {exc})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise InputError(f"{flag} {spec}: module {module_name!r} has no function {attr!r}")
    return fn


def verify_user(spec: str, prompts: list, completions: list[str | None],
                answers: list[str | None]) -> list[tuple[bool | None, str]]:
    """Verdicts of the user verifier `spec`; InputError when it raises or returns the wrong shape."""
    fn = import_function(spec, "--verify")
    try:
        out = fn(prompts=prompts, completions=[c or "" for c in completions], answer=answers)
    except Exception as exc:  # noqa: BLE001 - report which verifier failed, and how
        raise InputError(f"--verify {spec}: the verifier raised {type(exc).__name__}: {exc}") from None
    if not isinstance(out, list | tuple) or len(out) != len(completions):
        got = f"{len(out)} values" if hasattr(out, "__len__") else type(out).__name__
        raise InputError(f"--verify {spec}: must return a list of {len(completions)} verdicts; got {got}")
    verdicts: list[tuple[bool | None, str]] = []
    for v in out:
        if v is None:
            verdicts.append((None, spec))
        elif isinstance(v, bool | int | float):
            verdicts.append((bool(v > 0), spec))
        else:
            raise InputError(f"--verify {spec}: a verdict must be True/False, a number or None; got {v!r:.40}")
    return verdicts
