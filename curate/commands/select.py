"""`wb select SOURCE... --strategy S --keep N --output DIR`: keep the top rows by a score (curate/select.py).
The fastText model of `--strategy classifier` comes from `wb select train-classifier` (train_classifier.py)."""

from __future__ import annotations

import argparse

from curate.commands import add_run_arguments
from curate.select import SelectConfig
from workbench.config import add_config_arguments, build_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    parser.epilog = ("`wb select train-classifier --good SRC... --bad SRC... --output DIR` trains the classifier "
                     "of --strategy classifier (`wb select train-classifier --help` lists its options).")
    add_config_arguments(parser, SelectConfig)


def run(args: argparse.Namespace) -> int:
    from curate.select import select_rows

    config = build_config(SelectConfig, args, args.config)
    manifest = select_rows(config, args.sources, args.output)
    stats = manifest["select"]
    what = "groups" if stats["group_by"] else "rows"
    print(f"{manifest['rows_in']:,} rows in, {manifest['rows_out']:,} kept ({stats['kept_units']:,} of "
          f"{stats['units']:,} {what} by {stats['strategy']}) -> {args.output}/data.parquet")
    print(f"  mean score kept {stats['score_mean_kept']}, removed {stats['score_mean_removed']}; "
          f"removed rows: {args.output}/removed.parquet (reason not_selected)")
    if stats.get("unrated"):
        print(f"  {stats['unrated']} questions could not be rated (they rank last); re-run the same command to "
              "retry them")
    usage = manifest["usage"]
    if usage["requests"]:
        print(f"  judge usage: {usage['requests']:,} requests, {usage['prefill_tokens']:,} prompt + "
              f"{usage['sampled_tokens']:,} completion tokens")
    return 0

