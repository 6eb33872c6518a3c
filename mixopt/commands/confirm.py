"""`wb mix confirm MIXTURE --output DIR`: train proxies on the chosen, natural and uniform mixtures and compare."""

from __future__ import annotations

import argparse

from workbench.config import add_config_arguments, build_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mixopt.proxy import ProxyConfig

    parser.add_argument("mixture", help="mixture.json from `wb mix search`")
    parser.add_argument("--output", required=True, help="confirmation run directory to write")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per mixture (default: 3)")
    parser.add_argument("--workers", type=int, default=2, help="proxy processes at once (default: 2)")
    add_config_arguments(parser, ProxyConfig, skip=("seed",))


def run(args: argparse.Namespace) -> int:
    from mixopt import api
    from mixopt.proxy import ProxyConfig

    api.confirm_mixture(build_config(ProxyConfig, args), args.mixture, args.output, seeds=args.seeds,
                        workers=args.workers)
    return 0
