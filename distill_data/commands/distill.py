"""`wb distill PROMPTS --output DIR --model NAME --base-url URL ...`: teacher distillation that resumes.

Example: `wb distill examples/data/gsm8k/test.jsonl --prompt-field question --answer-field answer
--verify math --model Qwen/QwQ-32B --base-url http://localhost:8000/v1 --n 4 --output runs/gsm8k-qwq`.
Re-running the same command resumes; `--config x.yaml` holds the same options. On several client hosts,
each runs the command with `--shard i/n` and its own `--output`; `wb distill --merge RUN... --output DIR`
then combines the shard runs into one.
"""

from __future__ import annotations

import argparse

from workbench.config import RunOptions, add_config_arguments, build_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from distill_data.config import DistillConfig

    parser.add_argument("prompts", nargs="?",
                        help="prompt source: a file, a directory of shards, or a run directory")
    parser.add_argument("--merge", nargs="+", metavar="RUN",
                        help="combine these `--shard i/n` runs into --output (no prompts, no generation)")
    parser.add_argument("--config", help="YAML file with options (flags override it)")
    add_config_arguments(parser, DistillConfig)


def run(args: argparse.Namespace) -> int:
    from distill_data.config import DistillConfig
    from distill_data.pipeline import distill
    from workbench.errors import InputError

    if args.merge:
        return _merge(args)
    if not args.prompts:
        raise InputError("wb distill needs a prompt source (or --merge RUN... to combine shard runs)")
    cfg = build_config(DistillConfig, args, args.config, prompts=args.prompts)
    manifest = distill(cfg)
    c = manifest["status_counts"]
    print(f"{manifest['units']:,} units: {c['ok']:,} ok, {c['truncated']:,} truncated, {c['failed']:,} failed; "
          f"wrote {manifest['rows_out']:,} rows to {cfg.output}/data.parquet and {manifest['sft_rows']:,} "
          f"to sft.parquet")
    return 0


def _merge(args: argparse.Namespace) -> int:
    from distill_data.shards import merge_shards
    from workbench.errors import InputError

    if args.prompts:
        raise InputError(f"--merge combines finished runs: drop the prompt source {args.prompts!r}")
    output = getattr(args, "output", "")
    if not output:
        raise InputError("--merge needs --output (the run directory to write)")
    manifest = merge_shards(args.merge, output, getattr(args, "think_format", None), build_config(RunOptions, args))
    c = manifest["status_counts"]
    print(f"merged {len(args.merge)} shards: {manifest['units']:,} units ({c['ok']:,} ok, {c['truncated']:,} truncated, "
          f"{c['failed']:,} failed) into {output}/data.parquet and {manifest['sft_rows']:,} rows into sft.parquet")
    return 0
