"""`wb semdedup SOURCE... --encoder MODEL --output DIR`: semantic dedup by embeddings (curate/semdedup.py).

A command of its own rather than `wb dedup --semantic`: it loads an encoder with torch (which `wb dedup`
never imports), has its own knobs (encoder, clusters, cosine threshold, keep policies of SemDeDup), and
costs a forward pass per row, so it is usually run after exact and MinHash dedup on what they kept:
`wb dedup data --output runs/dd && wb semdedup runs/dd --encoder M --output runs/sd`.
"""

from __future__ import annotations

import argparse

from curate.commands import add_run_arguments
from curate.semdedup import SemDedupConfig
from workbench.config import add_config_arguments, build_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    add_config_arguments(parser, SemDedupConfig)


def run(args: argparse.Namespace) -> int:
    from curate.semdedup import CLUSTERS, semantic_dedup
    from workbench.runfiles import PRODUCT

    config = build_config(SemDedupConfig, args, args.config)
    manifest = semantic_dedup(config, args.sources, args.output)
    stats = manifest["semdedup"]
    print(f"{manifest['rows_in']:,} rows in, {manifest['rows_out']:,} kept -> {args.output}/{PRODUCT}")
    print(f"  removed {stats['removed']:,} semantic_duplicate (cosine > {config.threshold}, {stats['clusters']} "
          f"clusters, keep {config.keep}); clusters: {args.output}/{CLUSTERS}")
    return 0
