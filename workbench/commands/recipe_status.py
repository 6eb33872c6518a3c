"""`wb recipe status RECIPE.yaml [--json]`: each step of a recipe: reused / to run / running / done / failed,
why, its run directory and what it has cost, read from the files alone (nothing runs).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from workbench.recipe import Recipe
from workbench.recipe_run import StepStatus


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="the recipe file (YAML)")
    parser.add_argument("--workspace", help="directory for the steps' runs (default: the recipe's `workspace`)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def print_status(recipe: Recipe, statuses: list[StepStatus]) -> None:
    """The status table, then the recipe's total cost and where its runs are."""
    from workbench.commands.runs import table

    def counts(s: StepStatus) -> str:
        return "-" if s.rows_out is None else f"{s.rows_in or 0:,} -> {s.rows_out:,}"

    rows = [[s.name, s.state, counts(s), "-" if s.cost_usd is None else f"${s.cost_usd:.4f}",
             Path(s.run_dir).name if s.run_dir else "-", s.why] for s in statuses]
    print(table(rows, ["step", "state", "rows in -> out", "cost", "run", "why"]))
    for s in statuses:  # why rows left, step by step (`wb lineage RUN ID` follows one row through them)
        if s.dropped:
            print(f"  {s.name} dropped " + ", ".join(f"{n:,} {reason}" for reason, n in list(s.dropped.items())[:6]))
    total = sum(s.cost_usd or 0.0 for s in statuses)
    print(f"recipe {recipe.name}: {sum(s.state in ('done', 'reused') for s in statuses)} of {len(statuses)} "
          f"steps finished, ${total:.4f} spent; runs under {recipe.workspace}")


def run(args: argparse.Namespace) -> int:
    from workbench.recipe import load_recipe
    from workbench.recipe_run import as_rows, status

    recipe = load_recipe(args.recipe, args.workspace)
    statuses = status(recipe)
    if args.json:
        print(json.dumps(as_rows(statuses), indent=2))
    else:
        print_status(recipe, statuses)
    return 0
