"""`wb cache prune --older-than 7d`: drop the response cache's samples that no run has used for that long.

The cache (`llm/cache.py`) is `$WB_CACHE_DIR/responses.sqlite`, by default under `$WB_HOME/cache`; runs
that are writing it meanwhile are safe (a sample they still use is either kept or answered afresh).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--older-than", required=True,
                        help="age since a sample's last use, a number and a unit s m h d or w (e.g. 7d, 12h)")
    parser.add_argument("--cache-dir", help="the cache's directory (default: $WB_CACHE_DIR, else $WB_HOME/cache)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from llm.cache import CACHE_FILE, ResponseCache, cache_dir, parse_age

    age = parse_age(args.older_than)
    path = Path(args.cache_dir or cache_dir()) / CACHE_FILE
    if not path.exists():
        print(f"{path}: no response cache here yet; nothing to prune")
        return 0
    cache = ResponseCache(path)
    try:
        deleted, kept = cache.prune(age)
    finally:
        cache.close()
    print(f"{path}: pruned {deleted:,} samples unused for {args.older_than}; {kept:,} kept")
    return 0
