"""`wb decontam SOURCE... --benchmark gsm8k math500 FILE... --output DIR [--ngram 13] [--field F...]`.

Drops rows sharing a normalised word n-gram with a benchmark's questions or answers; each removed
row's `detail` names the benchmark item and the matched span; the manifest counts matches per benchmark.
"""

from __future__ import annotations

import argparse

from curate.commands import add_run_arguments
from curate.decontam import DecontamConfig
from workbench.config import add_config_arguments, build_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    add_config_arguments(parser, DecontamConfig)


def run(args: argparse.Namespace) -> int:
    from curate.commands.dedup import print_summary
    from curate.decontam import DecontamFilter, benchmarks_from
    from curate.pipeline import run_pipeline

    config = build_config(DecontamConfig, args, args.config)
    benchmarks = benchmarks_from(config)
    manifest = run_pipeline(args.sources, args.output, "decontam", config, config.field,
                            lambda fields: [DecontamFilter(fields, benchmarks, config.ngram)], dedup=None)
    print_summary(manifest, args.output)
    return 0
