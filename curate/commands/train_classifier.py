"""`wb select train-classifier --good G... --bad B... --output DIR`: train the fastText classifier that
`wb select --strategy classifier` ranks rows by (curate/classifier.py)."""

from __future__ import annotations

import argparse

from curate.classifier import TrainClassifierConfig
from workbench.config import add_config_arguments, build_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, help="the run directory to write")
    parser.add_argument("--config", help="a YAML file of options (flags override it)")
    add_config_arguments(parser, TrainClassifierConfig)


def run(args: argparse.Namespace) -> int:
    from curate.classifier import MODEL_FILE, train_classifier

    config = build_config(TrainClassifierConfig, args, args.config)
    stats = train_classifier(config, args.output)["classifier"]
    print(f"trained on {stats['good_rows']:,} good and {stats['bad_rows']:,} bad rows (training accuracy "
          f"{stats['train_accuracy']:.3f}) -> {args.output}/{MODEL_FILE}; use it with "
          f"`wb select SOURCE --strategy classifier --classifier {args.output} --keep N --output DIR`")
    return 0
