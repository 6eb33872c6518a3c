"""The `wb curate`, `wb dedup` and `wb decontam` command modules and the arguments they share."""

from __future__ import annotations

import argparse


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """SOURCE..., --output and --config, common to every curation command."""
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="files, directories or run directories")
    parser.add_argument("--output", required=True, help="the run directory to write")
    parser.add_argument("--config", help="a YAML file of options (flags override it)")
