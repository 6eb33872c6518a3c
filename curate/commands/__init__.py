"""The curation command modules (`wb curate`, `dedup`, `decontam`, `semdedup`, `select`, `select train-classifier`)
and the arguments they share."""

from __future__ import annotations

import argparse


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """SOURCE..., --output, --config, --engine and --ray-address, common to every curation command."""
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="files, directories or run directories")
    parser.add_argument("--output", required=True, help="the run directory to write")
    parser.add_argument("--config", help="a YAML file of options (flags override it)")
    parser.add_argument("--engine", default="local", choices=["local", "ray"],
                        help="where the steps and dedup run: this process (default) or Ray (needs the ray extra)")
    parser.add_argument("--ray-address", default=None,
                        help="a Ray cluster to join (host:port, ray://host:10001 or auto; default with --engine "
                             "ray: start a local Ray on this machine)")
