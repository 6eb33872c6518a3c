"""`wb curate SOURCE... --output DIR [--config curate.yaml]`: the whole curation pipeline in one run.

Order: filters (length by default; gopher_quality, gopher_repetition, c4, fineweb, language on
request), PII (off, redact or drop), decontamination against benchmarks, then exact and near dedup.
Each part is switchable; YAML may set per-filter settings (`filter_settings: {length: {min_words: 3}}`)
and dedup settings (`dedup_settings: {threshold: 0.8, keep: longest}`); flags override the file.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

from curate.commands import add_run_arguments
from curate.dedup import DedupConfig
from workbench.config import add_config_arguments, build_config, option


@dataclass
class CurateConfig:
    field: list[str] = option([], "fields to check: columns, `messages`, `messages.prompt`, `messages.response` "
                                  "(default: by record kind)")
    filters: list[str] = option(["length"], "filters in order: length, gopher_quality, gopher_repetition, c4, "
                                            "fineweb, language")
    filter_settings: dict = option({}, "per-filter settings, e.g. {language: {languages: [en], min_score: 0.65}}",
                                   cli=False)
    pii: str = option("off", "emails, IPs, phones and secrets: off, redact (placeholders) or drop",
                      choices=["off", "redact", "drop"])
    decontam: bool = option(True, "drop rows sharing an n-gram with a benchmark")
    benchmark: list[str] = option(["gsm8k", "math500"], "benchmarks: bundled names or jsonl/parquet files")
    decontam_ngram: int = option(13, "words per decontamination n-gram")
    dedup: bool = option(True, "exact and near dedup after the filters")
    dedup_settings: dict = option({}, "dedup settings (see `wb dedup --help`); flags such as --threshold win",
                                  cli=False)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    add_config_arguments(parser, CurateConfig)
    add_config_arguments(parser, DedupConfig, skip=("field",))


def dedup_config(config: CurateConfig, args: argparse.Namespace | None = None) -> DedupConfig:
    """Dedup settings: defaults < the YAML `dedup_settings` < dedup flags; fields come from the curate config."""
    from workbench.errors import InputError

    names = {f.name for f in dataclasses.fields(DedupConfig)} - {"field"}
    unknown = sorted(set(config.dedup_settings) - names)
    if unknown:
        raise InputError(f"dedup_settings: unknown option {unknown[0]!r}; known options are {sorted(names)}")
    flags = {k: v for k, v in vars(args or argparse.Namespace()).items() if k in names}
    return DedupConfig(field=list(config.field), **{**config.dedup_settings, **flags})


def make_steps(config: CurateConfig, fields: list[str]) -> list:
    """The streaming steps of a curate run, in order."""
    from curate.filters import build_filters

    steps = build_filters(config.filters, config.filter_settings, fields)
    if config.pii == "redact":
        from curate.filters.pii import PiiRedactor

        steps.append(PiiRedactor(fields))
    elif config.pii == "drop":
        from curate.filters.pii import PiiFilter

        steps.append(PiiFilter(fields))
    if config.decontam:
        from curate.decontam import DecontamConfig, DecontamFilter, benchmarks_from

        benchmarks = benchmarks_from(DecontamConfig(benchmark=config.benchmark, ngram=config.decontam_ngram))
        steps.append(DecontamFilter(fields, benchmarks, config.decontam_ngram))
    return steps


def run(args: argparse.Namespace) -> int:
    from curate.commands.dedup import print_summary
    from curate.dedup import check_dedup_config
    from curate.pipeline import run_pipeline

    config = build_config(CurateConfig, args, args.config)
    dedup = dedup_config(config, args) if config.dedup else None
    if dedup is not None:
        check_dedup_config(dedup)
    manifest = run_pipeline(args.sources, args.output, "curate", {"curate": config, "dedup": dedup}, config.field,
                            lambda fields: make_steps(config, fields), dedup=dedup)
    print_summary(manifest, args.output)
    return 0
