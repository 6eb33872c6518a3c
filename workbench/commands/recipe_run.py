"""`wb recipe run RECIPE.yaml [--max-cost USD]`: run a recipe's steps in dependency order, each into its own
run directory; a re-run reuses every step whose fingerprint matches a complete run and resumes an
interrupted one (see `workbench/recipe.py` for the file, `workbench/recipe_run.py` for the runner).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="the recipe file (YAML)")
    parser.add_argument("--workspace", help="directory for the steps' runs (default: the recipe's `workspace`)")
    parser.add_argument("--max-cost", type=float, help="USD over every step, overriding the recipe's max_cost; "
                                                       "a step stops cleanly when its share is spent")
    parser.add_argument("--until", metavar="STEP", help="stop after this step (and the steps it needs)")
    parser.add_argument("--quiet", action="store_true", help="do not echo the steps' output (it stays in wb.log)")


def run(args: argparse.Namespace) -> int:
    from workbench.commands.recipe_status import print_status
    from workbench.errors import InputError
    from workbench.recipe import load_recipe
    from workbench.recipe_run import run as run_recipe

    if args.max_cost is not None and not args.max_cost >= 0:
        raise InputError(f"--max-cost {args.max_cost}: must be a number of at least 0")
    recipe = load_recipe(args.recipe, args.workspace)
    print_status(recipe, run_recipe(recipe, args.max_cost, echo=not args.quiet, until=args.until))
    return 0
