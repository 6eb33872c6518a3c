"""`wb recipe plan RECIPE.yaml [--json]`: requests, prompt and sampled tokens, trained tokens and cost per
step and in total, each low-high, before anything runs (how each is estimated: `workbench/recipe_plan.py`).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="the recipe file (YAML)")
    parser.add_argument("--workspace", help="directory for the steps' runs (default: the recipe's `workspace`)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _range(r: tuple[float, float]) -> str:
    low, high = round(r[0]), round(r[1])
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def _cost(r: tuple[float, float] | None) -> str:
    if r is None:
        return "-"
    return f"${r[0]:.4f}" if abs(r[0] - r[1]) < 5e-5 else f"${r[0]:.4f}-{r[1]:.4f}"


def run(args: argparse.Namespace) -> int:
    from workbench.commands.runs import table
    from workbench.recipe import load_recipe
    from workbench.recipe_plan import plan, total

    recipe = load_recipe(args.recipe, args.workspace)
    estimates = plan(recipe)
    both = [*estimates, total(estimates)]
    if args.json:
        print(json.dumps([asdict(e) for e in both], indent=2))
        return 0
    rows = [[e.step, e.command, e.state if e.command else "", _range(e.requests), _range(e.prefill_tokens),
             _range(e.sampled_tokens), _range(e.trained_tokens), _cost(e.cost_usd)] for e in both]
    print(table(rows, ["step", "command", "", "requests", "prompt tokens", "sampled tokens", "trained tokens",
                       "cost"]))
    for e in estimates:
        print(f"  {e.step}: {'; '.join(e.basis)}")
    cap = f"; cap ${recipe.max_cost:.4f}" if recipe.max_cost is not None else ""
    print(f"recipe {recipe.name}: {len(estimates)} steps{cap}; runs under {recipe.workspace}")
    return 0
