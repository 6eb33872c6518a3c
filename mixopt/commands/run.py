"""`wb mix run PLAN_DIR [--workers 2]`: train one proxy per mixture of a plan (resumable)."""

from __future__ import annotations

import argparse

from workbench.config import add_config_arguments, build_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mixopt.proxy import ProxyConfig

    parser.add_argument("plan_dir", help="a directory written by `wb mix plan`")
    parser.add_argument("--workers", type=int, default=2, help="proxy processes at once (default: 2)")
    parser.add_argument("--limit", type=int, help="train at most this many runs now")
    add_config_arguments(parser, ProxyConfig, skip=("seed",))


def run(args: argparse.Namespace) -> int:
    from mixopt import api
    from mixopt.proxy import ProxyConfig

    config = api.sweep_config(args.plan_dir, build_config(ProxyConfig, args),
                              **({"tokens_per_run": args.tokens_per_run} if "tokens_per_run" in vars(args) else {}))
    result = api.train_proxies(args.plan_dir, config, workers=args.workers, limit=args.limit)
    print(f"{result.manifest['proxies']} proxies in {args.plan_dir}/results.parquet "
          f"({result.manifest['failed']} failed)")
    return 0
