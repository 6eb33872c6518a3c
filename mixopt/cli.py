"""`wb mix plan|run|fit|search|predict|build|confirm`: the RegMix chain as one set of commands.

    wb mix plan examples/mixopt/domains.yaml --output runs/mix --runs 48
    wb mix run runs/mix --workers 2
    wb mix fit runs/mix/results.parquet --output runs/mix-fit
    wb mix search runs/mix-fit --output runs/mix-search
    wb mix predict runs/mix-fit new-mixtures.parquet [--output runs/mix-predict]
    wb mix build runs/mix-search/mixture.json --output runs/mix-corpus --tokens 2000000   # or --rows 3000
    wb mix confirm runs/mix-search/mixture.json --output runs/mix-confirm
"""

from __future__ import annotations

import argparse

from workbench.config import add_config_arguments, build_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mixopt.build import BuildConfig
    from mixopt.fit import FitConfig
    from mixopt.plan import PlanConfig
    from mixopt.predict import PredictConfig
    from mixopt.proxy import ProxyConfig
    from mixopt.search import SearchConfig

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

    predict = sub.add_parser("predict", help="score mixtures in a table with a saved fit (and check against results)")
    predict.add_argument("fit_dir", help="a directory written by `wb mix fit`")
    predict.add_argument("table", help="table with the fit's weight columns (w.<domain>), optionally its metrics")
    predict.add_argument("--output", help="run directory for the predictions (data.parquet)")
    add_config_arguments(predict, PredictConfig)

    build = sub.add_parser("build", help="materialise the mixed corpus (text, or SFT rows sized by --rows)")
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
    from mixopt import api

    step = args.mix_command
    if step == "plan":
        from mixopt.plan import PlanConfig, load_plan

        result = api.plan_mixtures(build_config(PlanConfig, args), args.domains, args.output)
        plan = load_plan(result.path)
        for name, t in plan["tokens"].items():
            print(f"{name:<16} {t['docs']:>7,} docs {t['train']:>11,} train bytes {t['valid']:>9,} held out"
                  f"   prior {plan['prior'][name]:.3f}")
        reused = plan.get("reused")
        if reused:
            skipped = ", ".join(f"{n} {why}" for why, n in reused["skipped"].items()) or "none"
            print(f"reused {reused['runs']} proxies of {reused['from']} (not reused: {skipped})")
            for note in reused["notes"]:
                print(f"note: {note}")
        print(f"{plan['config']['runs']} mixtures -> {args.output}/mixtures.parquet"
              + (f" ({reused['fresh_runs']} to train)" if reused else ""))
    elif step == "run":
        from mixopt.proxy import ProxyConfig

        config = api.sweep_config(args.plan_dir, build_config(ProxyConfig, args),
                                  **({"tokens_per_run": args.tokens_per_run} if "tokens_per_run" in vars(args) else {}))
        result = api.train_proxies(args.plan_dir, config, workers=args.workers, limit=args.limit)
        print(f"{result.manifest['proxies']} proxies in {args.plan_dir}/results.parquet "
              f"({result.manifest['failed']} failed)")
    elif step == "fit":
        from mixopt.fit import FitConfig

        api.fit_regressor(build_config(FitConfig, args), args.results, args.output)
    elif step == "search":
        from mixopt.search import SearchConfig

        result = api.search_mixture(build_config(SearchConfig, args), args.fit_dir, args.output)
        print(f"mixture -> {result.path}/mixture.json (chart: {result.path}/mixture.png)")
    elif step == "predict":
        from mixopt.predict import PredictConfig

        api.predict_mixtures(build_config(PredictConfig, args), args.fit_dir, args.table, args.output)
    elif step == "build":
        from mixopt.build import BuildConfig

        api.build_corpus(build_config(BuildConfig, args), args.mixture, args.output)
    elif step == "confirm":
        from mixopt.proxy import ProxyConfig

        api.confirm_mixture(build_config(ProxyConfig, args), args.mixture, args.output, seeds=args.seeds, workers=args.workers)
    return 0
