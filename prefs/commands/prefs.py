"""`wb prefs PROMPTS --output DIR --strong-model A --weak-model B ...`: preference pairs that resume.

Example (delta learning, greedy, verifier-marked): `wb prefs examples/data/gsm8k/test.jsonl --prompt-field
question --answer-field answer --verify math --strong-model big --strong-base-url http://localhost:8000/v1
--weak-model small --weak-base-url http://localhost:8001/v1 --output runs/gsm8k-prefs`.
Re-running the same command resumes; `--config x.yaml` holds the same options.
"""

from __future__ import annotations

import argparse

from workbench.config import add_config_arguments, build_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from prefs.config import PrefsConfig

    parser.add_argument("prompts", help="prompt source: a file, a directory of shards, or a run directory")
    parser.add_argument("--config", help="YAML file with options (flags override it)")
    add_config_arguments(parser, PrefsConfig)


def run(args: argparse.Namespace) -> int:
    from prefs.config import PrefsConfig
    from prefs.pipeline import make_pairs

    cfg = build_config(PrefsConfig, args, args.config, prompts=args.prompts)
    manifest = make_pairs(cfg)
    stats = manifest["pair_stats"]
    reasons = ", ".join(f"{k} {v}" for k, v in stats["dropped"].items()) or "none"
    what = "pairs" if manifest["kind"] == "preference" else "SFT rows"
    print(f"{stats['kept']:,} of {stats['candidates']:,} {what} kept (dropped: {reasons}); "
          f"wrote {cfg.output}/data.parquet and removed.parquet")
    return 0
