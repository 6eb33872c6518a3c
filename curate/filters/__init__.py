"""Row filters, each answering keep or (drop, reason): length, Gopher quality and repetition, C4,
FineWeb, language id and PII for web text; turns, degenerate repetition, truncated reasoning, refusals,
language mismatch, code syntax and length ratio for post-training data (conversations and traces).
`build_filters` makes them from names and `FilterSettings`.

A filter's settings are its constructor's keyword arguments; `settings_class(name)` turns them into a
dataclass (same names, types and defaults), and `FilterSettings` holds one of those per filter, so YAML
(`filter_settings: {length: {min_words: 3}}`), flags and Python share one type coercion and one check
(`workbench.config.validate`) without a second list of every setting to keep in step.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import typing

from curate.step import Step
from workbench.config import option
from workbench.errors import InputError

FILTERS = {
    "length": ("curate.filters.length", "LengthFilter"),
    "gopher_quality": ("curate.filters.gopher", "GopherQualityFilter"),
    "gopher_repetition": ("curate.filters.gopher", "GopherRepetitionFilter"),
    "c4": ("curate.filters.c4", "C4Filter"),
    "fineweb": ("curate.filters.fineweb", "FineWebFilter"),
    "language": ("curate.filters.language", "LanguageFilter"),
    "turns": ("curate.filters.turns", "TurnsFilter"),
    "degenerate_repetition": ("curate.filters.degenerate_repetition", "DegenerateRepetitionFilter"),
    "truncated_reasoning": ("curate.filters.truncated_reasoning", "TruncatedReasoningFilter"),
    "refusal": ("curate.filters.refusal", "RefusalFilter"),
    "language_mismatch": ("curate.filters.language_mismatch", "LanguageMismatchFilter"),
    "code_syntax": ("curate.filters.code_syntax", "CodeSyntaxFilter"),
    "length_ratio": ("curate.filters.length_ratio", "LengthRatioFilter"),
}


def filter_class(name: str) -> type[Step]:
    if name not in FILTERS:
        raise InputError(f"unknown filter {name!r}; filters are {', '.join(FILTERS)}")
    module, cls_name = FILTERS[name]
    return getattr(importlib.import_module(module), cls_name)


@functools.cache
def settings_class(name: str) -> type:
    """The settings dataclass of filter `name`: one field per keyword argument of its constructor."""
    cls = filter_class(name)
    hints = typing.get_type_hints(cls.__init__)
    fields = []
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name in ("self", "fields") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        help_text = getattr(cls, "settings_help", {}).get(p.name, f"{name} filter setting")
        fields.append((p.name, hints.get(p.name, object), option(p.default, help_text)))
    title = "".join(part.title() for part in name.split("_")) + "Settings"
    return _here(dataclasses.make_dataclass(title, fields))


def _filter_settings_class() -> type:
    fields = [(name, settings_class(name), option(settings_class(name)(), f"settings of the {name} filter"))
              for name in FILTERS]
    return _here(dataclasses.make_dataclass("FilterSettings", fields))


def _here(cls: type) -> type:
    cls.__module__ = __name__  # generated classes pickle and print as this module's
    return cls


FilterSettings = _filter_settings_class()


def build_filters(names: list[str], settings: object | None, fields: list[str]) -> list[Step]:
    """Instantiate the named filters in order with their settings (a `FilterSettings`, or a mapping of
    filter name to settings mapping); raise `InputError` for an unknown name or setting."""
    if settings is None or isinstance(settings, dict):
        from workbench.config import coerce_values

        unknown = sorted(set(settings or {}) - set(FILTERS))
        if unknown:
            raise InputError(f"unknown filter {unknown[0]!r}; filters are {', '.join(FILTERS)}")
        settings = FilterSettings(**coerce_values(FilterSettings, dict(settings or {}), "filter_settings"))
    steps = []
    for name in names:
        filter_class(name)  # an unknown name is an input error, named
        given = dataclasses.asdict(getattr(settings, name))
        steps.append(filter_class(name)(fields, **given))
    return steps
