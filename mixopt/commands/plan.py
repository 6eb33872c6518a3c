"""`wb mix plan DOMAINS.yaml --output DIR`: read domains, store byte tokens, sample proxy mixtures."""

from __future__ import annotations

import argparse

from workbench.config import add_config_arguments, build_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mixopt.plan import PlanConfig

    parser.add_argument("domains", help="DOMAINS.yaml")
    parser.add_argument("--output", required=True, help="plan directory")
    add_config_arguments(parser, PlanConfig)


def run(args: argparse.Namespace) -> int:
    from mixopt import api
    from mixopt.plan import PlanConfig, load_plan

    result = api.plan_mixtures(build_config(PlanConfig, args), args.domains, args.output)
    plan = load_plan(result.path)
    virtual = plan.get("virtual")
    for name, t in plan["tokens"].items():
        where = (f"{virtual['members'][name]:.3f} of {virtual['name']}" if virtual and name in virtual["members"]
                 else f"prior {plan['prior'][name]:.3f}")
        print(f"{name:<16} {t['docs']:>7,} docs {t['train']:>11,} train bytes {t['valid']:>9,} held out   {where}")
    if virtual:
        saved = virtual["saved"]
        print(f"{virtual['name']!r}: {len(virtual['members'])} unchanged domains at the ratios of {virtual['from']} "
              f"(prior {plan['prior'][virtual['name']]:.3f}; built on {virtual['earlier_runs']} earlier proxies); "
              f"searching {len(plan['prior'])} domains: {saved['runs']} runs instead of {saved['full_runs']} for all "
              f"{len(plan['tokens'])} ({saved['fraction']:.0%} less proxy compute)")
    reused = plan.get("reused")
    if reused:
        skipped = ", ".join(f"{n} {why}" for why, n in reused["skipped"].items()) or "none"
        print(f"reused {reused['runs']} proxies of {reused['from']} (not reused: {skipped})")
        for note in reused["notes"]:
            print(f"note: {note}")
    print(f"{plan['config']['runs']} mixtures -> {args.output}/mixtures.parquet"
          + (f" ({reused['fresh_runs']} to train)" if reused else ""))
    return 0
