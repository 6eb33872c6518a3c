"""`wb curate SOURCE... --output DIR [--config curate.yaml]`: the whole curation pipeline in one run.

Order: filters (length by default; gopher_quality, gopher_repetition, c4, fineweb, language on
request), PII (off, redact or drop), decontamination against benchmarks, then exact and near dedup.
Each part is switchable; YAML may set per-filter settings (`filter_settings: {length: {min_words: 3}}`)
and dedup settings (`dedup_settings: {threshold: 0.8, keep: longest}`); flags override the file. The
pipeline itself is `curate.api.curate(config, sources, output)`; this module parses and prints.
"""

from __future__ import annotations

import argparse
import dataclasses

from curate.commands import add_run_arguments, light_start
from curate.config import CurateConfig
from curate.dedup import DedupConfig
from workbench.config import add_config_arguments, build_config, option_fields


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    add_config_arguments(parser, CurateConfig)
    add_config_arguments(parser, DedupConfig, skip=("field",))


def config_from_args(args: argparse.Namespace) -> CurateConfig:
    """Defaults < YAML (including its `dedup_settings`) < flags, dedup flags included."""
    config = build_config(CurateConfig, args, args.config)
    names = {f.name for f in option_fields(DedupConfig)} - {"field"}
    flags = {k: v for k, v in vars(args).items() if k in names}
    if flags:
        config = dataclasses.replace(config, dedup_settings=dataclasses.replace(config.dedup_settings, **flags))
    return config


def run(args: argparse.Namespace) -> int:
    from curate.api import curate
    from curate.commands.dedup import print_summary

    config = config_from_args(args)
    light_start(args, numba=config.dedup or config.decontam)
    result = curate(config, args.sources, args.output,
                   engine=args.engine, ray_address=args.ray_address)
    print_summary(result.manifest, args.output)
    return 0
