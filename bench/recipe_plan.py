"""How close `wb recipe plan` comes: plan a recipe, run it, and print each step's estimated range beside what
its run measured (requests, prompt and sampled tokens, trained tokens), with whether it fell inside.

    python -m bench.recipe_plan examples/recipes/demo.yaml --after data

`--after STEP` runs the recipe up to STEP before planning (the demo's data step writes the files every later
step reads, so nothing can be counted before it). The recipe's runs stay in its workspace; a re-run of this
script reuses them, so plan against a fresh workspace (`--workspace DIR`) to measure again.
"""

from __future__ import annotations

import argparse

from workbench.recipe import load_recipe
from workbench.recipe_plan import plan
from workbench.recipe_run import run, status
from workbench.rundir import read_manifest

QUANTITIES = ("requests", "prefill_tokens", "sampled_tokens", "trained_tokens")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--workspace", help="where the steps' runs go (default: the recipe's)")
    parser.add_argument("--after", help="run up to this step before planning")
    args = parser.parse_args()
    recipe = load_recipe(args.recipe, args.workspace)
    if args.after:
        run(recipe, until=args.after, echo=False)
    estimates = {e.step: e for e in plan(recipe)}
    run(recipe, echo=False)
    inside = total = 0
    print(f"{'step':<20} {'quantity':<15} {'low':>10} {'measured':>10} {'high':>10}  inside")
    for s in status(recipe):
        e = estimates[s.name]
        if e.state == "measured" or not s.run_dir:
            continue  # ran before the plan: nothing was estimated
        usage = read_manifest(s.run_dir).get("usage") or {}
        for q in QUANTITIES:
            low, high = getattr(e, q)
            measured = usage.get(q) or 0
            if not (high or measured):
                continue
            ok = low <= measured <= high
            inside, total = inside + ok, total + 1
            print(f"{s.name:<20} {q:<15} {low:>10,.0f} {measured:>10,} {high:>10,.0f}  {'yes' if ok else 'NO'}")
    print(f"{inside} of {total} measured quantities inside the planned range")


if __name__ == "__main__":
    main()
