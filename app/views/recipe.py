"""Recipe: a recipe file in the workspace drawn as a graph of its steps (state, reused or not, cost so far
against the plan), each step linking to its run on the Runs page; start and stop the recipe here. The page
reads what `wb recipe status` and `wb recipe plan` read (`workbench.recipe_run`, `workbench.recipe_plan`)."""

from pathlib import Path
from urllib.parse import quote

import polars as pl
import streamlit as st

from app.ui import page_setup, shown_errors
from app.workspace import run_name, safe_path
from workbench.recipe import Recipe, load_recipe
from workbench.recipe_plan import Estimate, plan
from workbench.recipe_run import RECIPE_LOG, StepStatus, recipe_running, start, status, stop

COLORS = {"reused": "#e0e0e0", "done": "#b7e4b0", "running": "#9ecae1", "failed": "#f4a6a6", "to run": "#ffffff"}

root = page_setup("Recipe")


def recipe_files(root: Path) -> list[str]:
    """YAML files up to two folders down the workspace that hold a `steps:` mapping (names relative to it)."""
    found = []
    for pattern in ("*.yaml", "*/*.yaml", "*/*/*.yaml"):
        for path in sorted(root.glob(pattern)):
            try:
                head = path.read_text(errors="replace")[:20_000]
            except OSError:
                continue
            if "\nsteps:" in f"\n{head}" and "command:" in head:
                found.append(path.relative_to(root).as_posix())
    return found


@st.cache_data(show_spinner="Estimating the plan...", max_entries=16)
def cached_plan(path: str, workspace: str, stamp: tuple) -> list[Estimate]:
    return plan(load_recipe(path, workspace))


def dollars(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


def planned(e: Estimate | None) -> str:
    if e is None or e.cost_usd is None:
        return "not priced"
    low, high = e.cost_usd
    return dollars(low) if abs(high - low) < 5e-5 else f"{dollars(low)}-{dollars(high)}"


def run_link(s: StepStatus) -> str | None:
    """The step's run on the Runs page, when its directory lies in the app's workspace."""
    if not s.run_dir or not Path(s.run_dir).exists():
        return None
    try:
        return "./?run=" + quote(run_name(root, safe_path(root, s.run_dir)), safe="")
    except Exception:  # a recipe whose workspace lies outside the app's: nothing to link to
        return None


def graph(statuses: list[StepStatus], estimates: dict[str, Estimate]) -> str:
    """The recipe as Graphviz DOT: one box per step (filled by state), an edge per dependency."""
    lines = ["digraph recipe {", 'rankdir=LR; node [shape=box, style="rounded,filled", fontname="Helvetica"];']
    for s in statuses:
        e = estimates.get(s.name)
        cost = f"\\n{dollars(s.cost_usd)} of plan {planned(e)}" if e is not None and e.cost_usd is not None else ""
        label = f"{s.name}\\n{s.command}\\n{s.state}{cost}"
        link = run_link(s)
        url = f', URL="{link}", target="_top"' if link else ""
        lines.append(f'"{s.name}" [label="{label}", fillcolor="{COLORS.get(s.state, "#ffffff")}", '
                     f'tooltip="{s.why.replace(chr(34), chr(39))}"{url}];')
        lines += [f'"{dep}" -> "{s.name}";' for dep in s.after or []]
    lines.append("}")
    return "\n".join(lines)


def show(recipe: Recipe) -> None:
    statuses = status(recipe)
    stamp = (recipe.path.stat().st_mtime_ns, tuple((s.state, s.fingerprint) for s in statuses))
    estimates = {e.step: e for e in cached_plan(str(recipe.path), str(recipe.workspace), stamp)}
    running = recipe_running(recipe.workspace)
    spent = sum(s.cost_usd or 0.0 for s in statuses)
    cap = f" of a {dollars(recipe.max_cost)} cap" if recipe.max_cost is not None else ""
    st.markdown(f"**{recipe.name}**: {sum(s.state in ('done', 'reused') for s in statuses)} of {len(statuses)} "
                f"steps finished, {dollars(spent)} spent{cap}; "
                + (f"running (pid {running})" if running else "not running") + f"; runs under `{recipe.workspace}`")
    st.graphviz_chart(graph(statuses, estimates), width="stretch")
    st.dataframe(pl.DataFrame([{"step": s.name, "state": s.state, "why": s.why, "cost": dollars(s.cost_usd),
                                "plan": planned(estimates.get(s.name)), "run": run_link(s)} for s in statuses]),
                 hide_index=True, key="recipe_steps",
                 column_config={"run": st.column_config.LinkColumn("run", display_text="open run")})


files = recipe_files(root)
if not files:
    st.info(f"No recipe files under {root}. Copy one there (examples/recipes/ has some) and reload.")
    st.stop()
wanted = st.query_params.get("recipe")
choice = st.selectbox("Recipe file", files, index=files.index(wanted) if wanted in files else 0, key="recipe_file")
if st.query_params.get("recipe") != choice:
    st.query_params["recipe"] = choice

with shown_errors():
    recipe = load_recipe(safe_path(root, choice))
    left, right, _ = st.columns([1, 1, 6])
    if left.button("Start", type="primary", disabled=recipe_running(recipe.workspace) is not None):
        st.toast(f"started recipe {recipe.name} (pid {start(recipe)})")
    if right.button("Stop", disabled=recipe_running(recipe.workspace) is None):
        st.toast(stop(recipe.workspace))

    @st.fragment(run_every=2.0 if recipe_running(recipe.workspace) else None)
    def live() -> None:
        with shown_errors():
            show(recipe)
            log = recipe.workspace / RECIPE_LOG
            if log.exists():
                with st.expander("recipe.log"):
                    st.code(log.read_text(errors="replace")[-4000:] or "(empty)")

    live()
