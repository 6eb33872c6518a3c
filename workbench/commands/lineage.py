"""`wb lineage RUN ROW_ID [--json]`: the chain of a row back to its source file and row; for a row dropped
on the way, the stage and the reason."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="a run directory")
    parser.add_argument("row_id", help="the row's `id`")
    parser.add_argument("--json", action="store_true", help="print the hops as JSON")


def run(args: argparse.Namespace) -> int:
    from workbench.lineage import format_chain, trace

    hops = trace(args.run, args.row_id)
    print(json.dumps([asdict(h) for h in hops], indent=2, default=str) if args.json else format_chain(hops))
    return 0
