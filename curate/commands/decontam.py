"""`wb decontam SOURCE... --benchmark gsm8k math500 FILE... --output DIR [--ngram 13] [--field F...]`.

Drops rows sharing a normalised word n-gram with a benchmark's questions or answers; each removed
row's `detail` names the benchmark item and the matched span; the manifest counts matches per benchmark.
"""

from __future__ import annotations

import argparse

from curate.commands import add_run_arguments, light_start
from curate.decontam import DecontamConfig
from workbench.config import add_config_arguments, build_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    add_config_arguments(parser, DecontamConfig)


def run(args: argparse.Namespace) -> int:
    light_start(args, numba=True)
    from curate.api import decontaminate
    from curate.commands.dedup import print_summary

    result = decontaminate(build_config(DecontamConfig, args, args.config), args.sources, args.output,
                          engine=args.engine, ray_address=args.ray_address)
    print_summary(result.manifest, args.output)
    return 0
