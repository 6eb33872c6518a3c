"""`wb mix fit RESULTS --output DIR`: fit LightGBM and a linear baseline from mixture weights to metrics."""

from __future__ import annotations

import argparse

from workbench.config import add_config_arguments, build_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mixopt.fit import FitConfig

    parser.add_argument("results", help="results.parquet of a sweep, or any table with weight and metric columns")
    parser.add_argument("--output", required=True, help="fit run directory to write")
    add_config_arguments(parser, FitConfig)


def run(args: argparse.Namespace) -> int:
    from mixopt import api
    from mixopt.fit import FitConfig

    api.fit_regressor(build_config(FitConfig, args), args.results, args.output)
    return 0
