"""`wb mix plan|run|fit|search|build|confirm`: the RegMix chain as one set of commands.

    wb mix plan examples/mixopt/domains.yaml --output runs/mix --runs 48
    wb mix run runs/mix --workers 2
    wb mix fit runs/mix/results.parquet --output runs/mix-fit
    wb mix search runs/mix-fit --output runs/mix-search
    wb mix build runs/mix-search/mixture.json --output runs/mix-corpus --tokens 2000000
    wb mix confirm runs/mix-search/mixture.json --output runs/mix-confirm
"""

from __future__ import annotations

import argparse

from workbench.config import add_config_arguments, build_config
from workbench.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mixopt.build import BuildConfig
    from mixopt.fit import FitConfig
    from mixopt.plan import PlanConfig
    from mixopt.search import SearchConfig
    from trainers.lm import ProxyConfig

    sub = parser.add_subparsers(dest="mix_command", metavar="STEP", required=True)
    plan = sub.add_parser("plan", help="read domains, store byte tokens, sample proxy mixtures")
    plan.add_argument("domains", help="DOMAINS.yaml")
    plan.add_argument("--output", required=True, help="plan directory")
    add_config_arguments(plan, PlanConfig)

    run = sub.add_parser("run", help="train one proxy per mixture (resumable)")
    run.add_argument("plan_dir", help="a directory written by `wb mix plan`")
    run.add_argument("--workers", type=int, default=2, help="proxy processes at once (default: 2)")
    run.add_argument("--limit", type=int, help="train at most this many runs now")
    add_config_arguments(run, ProxyConfig, skip=("seed",))

    fit = sub.add_parser("fit", help="fit LightGBM and a linear baseline from weights to metrics")
    fit.add_argument("results", help="results.parquet of a sweep, or any table with weight and metric columns")
    fit.add_argument("--output", required=True, help="fit run directory to write")
    add_config_arguments(fit, FitConfig)

    search = sub.add_parser("search", help="simulate mixtures, predict, average the top k")
    search.add_argument("fit_dir", help="a directory written by `wb mix fit`")
    search.add_argument("--output", help="search run directory (default: FIT_DIR/../<name>-search)")
    add_config_arguments(search, SearchConfig)

    build = sub.add_parser("build", help="materialise the mixed corpus")
    build.add_argument("mixture", help="mixture.json from `wb mix search`")
    build.add_argument("--output", required=True, help="corpus run directory to write")
    add_config_arguments(build, BuildConfig)

    confirm = sub.add_parser("confirm", help="train on chosen, natural and uniform mixtures and compare")
    confirm.add_argument("mixture", help="mixture.json from `wb mix search`")
    confirm.add_argument("--output", required=True, help="confirmation run directory to write")
    confirm.add_argument("--seeds", type=int, default=3, help="seeds per mixture (default: 3)")
    confirm.add_argument("--workers", type=int, default=2, help="proxy processes at once (default: 2)")
    add_config_arguments(confirm, ProxyConfig, skip=("seed",))


def run(args: argparse.Namespace) -> int:
    step = args.mix_command
    if step == "plan":
        from mixopt.plan import PlanConfig, make_plan

        plan = make_plan(args.domains, args.output, build_config(PlanConfig, args))
        for name, t in plan["tokens"].items():
            print(f"{name:<16} {t['docs']:>7,} docs {t['train']:>11,} train bytes {t['valid']:>9,} held out"
                  f"   prior {plan['prior'][name]:.3f}")
        print(f"sampled {plan['config']['runs']} mixtures -> {args.output}/mixtures.parquet")
    elif step == "run":
        from mixopt.plan import load_plan
        from mixopt.sweep import run_sweep
        from trainers.lm import ProxyConfig

        if args.workers < 1:
            raise InputError(f"--workers {args.workers}: must be at least 1")
        # the plan's token budget is the default, so its epoch caps hold for the proxies
        plan_tokens = load_plan(args.plan_dir)["constraints"]["tokens_per_run"]
        config = build_config(ProxyConfig, args, **({} if "tokens_per_run" in vars(args) else
                                                    {"tokens_per_run": plan_tokens}))
        rows = run_sweep(args.plan_dir, config, workers=args.workers, limit=args.limit)
        failed = sum(r["status"] != "ok" for r in rows)
        print(f"{len(rows)} proxies in {args.plan_dir}/results.parquet ({failed} failed)")
    elif step == "fit":
        from mixopt.fit import FitConfig, run_fit

        run_fit(args.results, args.output, build_config(FitConfig, args))
    elif step == "search":
        from pathlib import Path

        from mixopt.search import SearchConfig, run_search

        fit_dir = Path(args.fit_dir)
        output = args.output or fit_dir.parent / f"{fit_dir.name.removesuffix('-fit')}-search"
        run_search(fit_dir, output, build_config(SearchConfig, args))
        print(f"mixture -> {output}/mixture.json (chart: {output}/mixture.png)")
    elif step == "build":
        from mixopt.build import BuildConfig, run_build

        run_build(args.mixture, args.output, build_config(BuildConfig, args))
    elif step == "confirm":
        from mixopt.confirm import run_confirm
        from trainers.lm import ProxyConfig

        if args.seeds < 1 or args.workers < 1:
            raise InputError("--seeds and --workers must be at least 1")
        run_confirm(args.mixture, args.output, build_config(ProxyConfig, args), seeds=args.seeds,
                    workers=args.workers)
    return 0
