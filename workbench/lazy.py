"""Lazy package exports: `from curate import curate` without `import curate` importing the pipeline.

A package lists its public names and the modules that hold them; `lazy_exports` returns the module
`__getattr__` (PEP 562) that imports a name's module on first use, so importing a package stays light
(no torch, numba or Arrow compute kernels until a function is actually called).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, names: dict[str, str]) -> Callable[[str], object]:
    """The `__getattr__` of `package` that resolves each of `names` (name -> module) on first use."""

    def __getattr__(name: str) -> object:
        if name in names:
            return getattr(importlib.import_module(names[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
