"""Row filters, each answering keep or (drop, reason): length, Gopher quality and repetition, C4,
FineWeb, language id and PII. `build_filters` makes them from names and per-filter settings."""

from __future__ import annotations

import inspect

from curate.step import Step
from workbench.errors import InputError

FILTERS = {
    "length": ("curate.filters.length", "LengthFilter"),
    "gopher_quality": ("curate.filters.gopher", "GopherQualityFilter"),
    "gopher_repetition": ("curate.filters.gopher", "GopherRepetitionFilter"),
    "c4": ("curate.filters.c4", "C4Filter"),
    "fineweb": ("curate.filters.fineweb", "FineWebFilter"),
    "language": ("curate.filters.language", "LanguageFilter"),
}


def build_filters(names: list[str], settings: dict[str, dict], fields: list[str]) -> list[Step]:
    """Instantiate the named filters in order; raise `InputError` for an unknown name or setting."""
    import importlib

    unknown = sorted(set(names) - set(FILTERS)) + sorted(set(settings) - set(FILTERS))
    if unknown:
        raise InputError(f"unknown filter {unknown[0]!r}; filters are {', '.join(FILTERS)}")
    steps = []
    for name in names:
        module, cls_name = FILTERS[name]
        cls = getattr(importlib.import_module(module), cls_name)
        given = dict(settings.get(name) or {})
        allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "fields")]
        bad = sorted(set(given) - set(allowed))
        if bad:
            raise InputError(f"filter {name!r} has no setting {bad[0]!r}; settings are {', '.join(allowed)}")
        steps.append(cls(fields, **given))
    return steps
