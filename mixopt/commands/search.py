"""`wb mix search FIT_DIR [--output DIR]`: simulate mixtures, predict them with the fit, average the top k."""

from __future__ import annotations

import argparse

from workbench.config import add_config_arguments, build_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mixopt.search import SearchConfig

    parser.add_argument("fit_dir", help="a directory written by `wb mix fit`")
    parser.add_argument("--output", help="search run directory (default: FIT_DIR/../<name>-search)")
    add_config_arguments(parser, SearchConfig)


def run(args: argparse.Namespace) -> int:
    from mixopt import api
    from mixopt.search import SearchConfig

    result = api.search_mixture(build_config(SearchConfig, args), args.fit_dir, args.output)
    print(f"mixture -> {result.path}/mixture.json (chart: {result.path}/mixture.png)")
    return 0
