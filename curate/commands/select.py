"""`wb select SOURCE... --strategy S --keep N --output DIR`: keep the top rows by a score (curate/select.py);
`wb select train-classifier --good G... --bad B... --output DIR`: train the fastText classifier the
`classifier` strategy ranks by (curate/classifier.py)."""

from __future__ import annotations

import argparse

from curate.classifier import TrainClassifierConfig
from curate.commands import add_run_arguments
from curate.select import SelectConfig
from workbench.config import add_config_arguments, build_config
from workbench.errors import InputError

TRAIN = "train-classifier"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    parser.epilog = (f"`wb select {TRAIN} --good SRC... --bad SRC... --output DIR` trains the classifier; "
                     "its options are --good, --bad, --field, --epoch, --lr, --word-ngrams, --dim and --seed.")
    add_config_arguments(parser, SelectConfig)
    train = parser.add_argument_group(f"{TRAIN} options")
    add_config_arguments(train, TrainClassifierConfig, skip=("field", "seed"))


def run(args: argparse.Namespace) -> int:
    if args.sources[0] == TRAIN:
        return train_classifier(args)
    if getattr(args, "good", None) or getattr(args, "bad", None):
        raise InputError(f"--good and --bad belong to `wb select {TRAIN}`")
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


def train_classifier(args: argparse.Namespace) -> int:
    from curate.classifier import MODEL_FILE, train_classifier

    if len(args.sources) > 1:
        raise InputError(f"`wb select {TRAIN}` takes no SOURCE; give --good and --bad sources")
    config = build_config(TrainClassifierConfig, args, args.config)
    stats = train_classifier(config, args.output)["classifier"]
    print(f"trained on {stats['good_rows']:,} good and {stats['bad_rows']:,} bad rows (training accuracy "
          f"{stats['train_accuracy']:.3f}) -> {args.output}/{MODEL_FILE}; use it with "
          f"`wb select SOURCE --strategy classifier --classifier {args.output} --keep N --output DIR`")
    return 0
