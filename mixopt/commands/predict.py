"""`wb mix predict FIT_DIR TABLE [--output DIR]`: score the mixtures of a table with a saved fit (and, where the
table has the fit's metrics, check the predictions against them)."""

from __future__ import annotations

import argparse

from workbench.config import add_config_arguments, build_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mixopt.predict import PredictConfig

    parser.add_argument("fit_dir", help="a directory written by `wb mix fit`")
    parser.add_argument("table", help="table with the fit's weight columns (w.<domain>), optionally its metrics")
    parser.add_argument("--output", help="run directory for the predictions (data.parquet)")
    add_config_arguments(parser, PredictConfig)


def run(args: argparse.Namespace) -> int:
    from mixopt import api
    from mixopt.predict import PredictConfig

    api.predict_mixtures(build_config(PredictConfig, args), args.fit_dir, args.table, args.output)
    return 0
