"""`wb dedup SOURCE... --output DIR`: exact and MinHash near dedup with a keep policy.

Writes `data.parquet` (kept rows), `removed.parquet` (each removed row with reason, detail,
duplicate_of, cluster_id, similarity), `dedup_index.parquet` + `signatures.npy` (for a later
`--against`), and `manifest.json` with counts per reason and the LSH detection curve.
"""

from __future__ import annotations

import argparse

from curate.commands import add_run_arguments, light_start
from curate.dedup import DedupConfig
from workbench.config import add_config_arguments, build_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    add_config_arguments(parser, DedupConfig)


def run(args: argparse.Namespace) -> int:
    light_start(args, numba=True)
    from curate.api import deduplicate

    result = deduplicate(build_config(DedupConfig, args, args.config), args.sources, args.output,
                        engine=args.engine, ray_address=args.ray_address)
    print_summary(result.manifest, args.output)
    return 0


def print_summary(manifest: dict, output: str) -> None:
    """Print rows in/out, counts per reason and, for near dedup, the detection curve."""
    print(f"{manifest['rows_in']:,} rows in, {manifest['rows_out']:,} kept -> {output}/data.parquet")
    for reason, count in manifest["dropped"].items():
        print(f"  removed {count:,} {reason}")
    lsh = (manifest.get("dedup") or {}).get("lsh")
    if lsh:
        curve = ", ".join(f"P(candidate | J={s}) = {p:.3f}" for s, p in lsh["detection"].items())
        print(f"  LSH {lsh['bands']} bands x {lsh['rows']} rows: {curve}")
