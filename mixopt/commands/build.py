"""`wb mix build MIXTURE --output DIR`: materialise the mixed corpus (text by --tokens, or SFT rows by --rows)."""

from __future__ import annotations

import argparse

from workbench.config import add_config_arguments, build_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mixopt.build import BuildConfig

    parser.add_argument("mixture", help="mixture.json from `wb mix search`")
    parser.add_argument("--output", required=True, help="corpus run directory to write")
    add_config_arguments(parser, BuildConfig)


def run(args: argparse.Namespace) -> int:
    from mixopt import api
    from mixopt.build import BuildConfig

    api.build_corpus(build_config(BuildConfig, args), args.mixture, args.output)
    return 0
