"""`wb eval --model M --benchmark gsm8k math500 FILE... --output DIR`: score a model; `--compare RUN RUN...`.

Example: `wb eval --model runs/sft/model --benchmark gsm8k --limit 200 --output runs/eval-sft`, or against
a server: `--base-url http://127.0.0.1:8000/v1 --model NAME` (a base URL means HTTP). User benchmarks:
`--benchmark my.jsonl --prompt-field question --answer-field answer --verify exact` (or
`--verify package.module:function`, or `--verify judge --judge-model J --judge-base-url URL` for answers
no string or math check can grade). Re-running the same command resumes. `wb eval --compare A B C`
prints B and C against A with a paired bootstrap over the items they share.
"""

from __future__ import annotations

import argparse

from workbench.config import add_config_arguments, build_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from evals.config import EvalConfig

    parser.add_argument("--config", help="YAML file with options (flags override it)")
    parser.add_argument("--compare", nargs="+", metavar="RUN",
                        help="compare finished eval runs (the first is the baseline) instead of evaluating")
    add_config_arguments(parser, EvalConfig)


def run(args: argparse.Namespace) -> int:
    if args.compare:
        from evals.compare import compare_runs, format_table

        print(format_table(args.compare, compare_runs(args.compare)))
        return 0
    from evals.config import EvalConfig
    from evals.pipeline import evaluate

    cfg = build_config(EvalConfig, args, args.config)
    manifest = evaluate(cfg)
    print(format_metrics(manifest["metrics"]))
    c = manifest["status_counts"]
    if c["failed"]:
        print(f"wb eval: {c['failed']:,} samples failed at the endpoint and count as wrong; re-run the same command "
              "to retry them")
    unverified = sum(m.get("unverified", 0) for m in manifest["metrics"].values())
    if unverified:
        print(f"wb eval: {unverified:,} answered samples got no verdict (see verify_detail in data.parquet) and count "
              "as wrong; re-run the same command to ask the judge again where its request failed")
    print(f"wrote {manifest['rows_out']:,} rows to {cfg.output}/data.parquet")
    return 0


def format_metrics(metrics: dict) -> str:
    """One line per benchmark: accuracy with its interval, pass@k / maj@k, tokens and truncation."""
    lines = []
    for name, m in metrics.items():
        extra = "  ".join(f"{k} {100 * v:.1f}%" for k, v in m.items() if k.startswith(("pass@", "maj@")) and
                          k != "pass@1")
        lines.append(f"{name}: accuracy {100 * m['accuracy']:.1f}% (95% CI {100 * m['ci95'][0]:.1f}-"
                     f"{100 * m['ci95'][1]:.1f}, {m['items']} items x {m['samples_per_item']})  {extra}  "
                     f"mean tokens {m['mean_response_tokens']:.1f}  truncated {100 * m['truncation_rate']:.1f}%")
    return "\n".join(lines)
