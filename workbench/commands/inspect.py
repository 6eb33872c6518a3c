"""`wb inspect SOURCE`: the detected record kind and schema, row and null counts, lengths, 3 samples."""

from __future__ import annotations

import argparse
import json

from workbench.inspection import format_report, profile
from workbench.io import open_source


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="a file, a directory of shards, a run directory, or hf://owner/name")
    parser.add_argument("--split", help="split of a DatasetDict directory or hub dataset (default: train)")
    parser.add_argument("--hub", action="store_true", help="treat SOURCE as a hub dataset id")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    report = profile(open_source(args.source, split=args.split, hub=args.hub))
    print(json.dumps(report, indent=2, default=str, ensure_ascii=False) if args.json else format_report(report))
    return 0
