"""`wb mix merge PLAN_DIR [SHARD ...]`: join the shards of a `wb mix run --shard i/n` sweep into results.parquet."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("plan_dir", help="the plan directory the shards were trained for")
    parser.add_argument("shards", nargs="*", help="shard results tables or folders (default: PLAN_DIR/shards/*)")


def run(args: argparse.Namespace) -> int:
    from mixopt import api

    s = api.merge_shards(args.plan_dir, args.shards)
    print(f"{s['from_shards']} proxies from {s['shards']} shards + {s['earlier']} earlier -> "
          f"{args.plan_dir}/results.parquet ({s['rows']} rows, {s['failed']} failed)")
    return 0
