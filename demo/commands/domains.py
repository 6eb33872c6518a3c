"""`wb demo domains CURATED --heldout FILE --output DIR`: the mixture search's input for the demo recipe:
one parquet file per `domain` of a curated run (`DIR/domains/`) and `DIR/domains.yaml` naming them, with the
held-out benchmark as the validation set (`wb mix plan DIR/domains.yaml`), as `wb demo` writes them.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("curated", help="a curated run directory whose rows carry a `domain` column")
    parser.add_argument("--heldout", required=True, help="the benchmark file the proxies are scored on")
    parser.add_argument("--output", required=True, help="the run directory to write")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from demo.stages import split_by_domain
    from workbench.rundir import RunDir
    from workbench.runfiles import PRODUCT, write_atomic

    with RunDir(args.output, "demo domains", {"heldout": args.heldout}, inputs=[args.curated], argv=args.argv) as run:
        paths = split_by_domain(Path(args.curated) / PRODUCT, Path(run.path) / "domains")
        write_atomic(Path(run.path) / "domains.yaml", json.dumps({
            "domains": {d: {"sources": [str(p.resolve())], "field": "text"} for d, p in paths.items()},
            "validation": {"heldout": {"sources": [str(Path(args.heldout).resolve())], "field": "text"}},
            "heldout_fraction": 0.05, "max_epochs": 8}))
        run.finish(rows_in=None, rows_out=None, domains=sorted(paths))
    print(f"{len(paths)} domains: {', '.join(sorted(paths))} -> {args.output}/domains.yaml")
    return 0
