"""`wb search SOURCE --query TEXT --encoder MODEL [--top 20] [--json]`: the rows nearest in meaning to a query
(curate/search.py). The Data browser's semantic search runs this command."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from curate.search import SearchConfig
    from workbench.config import add_config_arguments

    parser.add_argument("source", help="a file, a directory of shards or a run directory")
    parser.add_argument("--config", help="a YAML file of options (flags override it)")
    parser.add_argument("--json", action="store_true", help="one JSON object per hit (rank, row, id, score, text)")
    add_config_arguments(parser, SearchConfig)


def run(args: argparse.Namespace) -> int:
    import json

    from curate.search import SearchConfig, search
    from workbench.config import build_config

    config = build_config(SearchConfig, args, args.config)
    hits = search(config, args.source)
    for hit in hits:
        if args.json:
            print(json.dumps(hit, ensure_ascii=False))
        else:
            text = " ".join(hit["text"].split())[:100]
            print(f"{hit['rank']:>4}  {hit['score']:.4f}  row {hit['row']:<8} {str(hit['id'])[:24]:<24} {text}")
    return 0
