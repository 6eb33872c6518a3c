"""`wb mix run PLAN_DIR [--workers 2 | --engine ray | --shard i/n]`: train one proxy per mixture of a plan
(resumable)."""

from __future__ import annotations

import argparse

from workbench.config import add_config_arguments, build_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mixopt.proxy import ProxyConfig

    parser.add_argument("plan_dir", help="a directory written by `wb mix plan`")
    parser.add_argument("--workers", type=int, default=2, help="proxy processes at once, local engine (default: 2)")
    parser.add_argument("--limit", type=int, help="train at most this many runs now")
    parser.add_argument("--engine", default="local", choices=["local", "ray"],
                        help="local worker processes, or one Ray task per proxy (default: local)")
    parser.add_argument("--ray-address", help="Ray cluster to use with --engine ray (host:port, ray://..., auto); "
                                              "default: a local Ray on 127.0.0.1")
    parser.add_argument("--gpus-per-proxy", type=float, default=0.0,
                        help="GPU share each Ray task asks for, e.g. 0.25 packs four proxies per GPU (default: 0)")
    parser.add_argument("--shard", help="i/n: train only every n-th mixture from the i-th, into shards/<i>-of-<n>/ "
                                        "(clusters without Ray; join with `wb mix merge`)")
    add_config_arguments(parser, ProxyConfig, skip=("seed",))


def run(args: argparse.Namespace) -> int:
    from mixopt import api
    from mixopt.proxy import ProxyConfig

    given = {k: vars(args)[k] for k in ("tokens_per_run", "model_size") if k in vars(args)}  # else the plan's
    config = api.sweep_config(args.plan_dir, build_config(ProxyConfig, args), **given)
    result = api.train_proxies(args.plan_dir, config, workers=args.workers, limit=args.limit, engine=args.engine,
                               ray_address=args.ray_address, gpus_per_proxy=args.gpus_per_proxy, shard=args.shard)
    where = f"{args.plan_dir}/shards/{args.shard.replace('/', '-of-')}" if args.shard else args.plan_dir
    print(f"{result.manifest['proxies']} proxies in {where}/results.parquet ({result.manifest['failed']} failed)")
    return 0
