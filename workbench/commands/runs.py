"""`wb runs [WORKSPACE] [--usage] [--json]`: every run below a workspace, its state, rows, tokens and cost.

`--usage` totals prefill, sampled and trained tokens and cost per stage and overall: one ledger across
generation, judges, evaluation and training. Prefill and sampled are the tokens paid for; beside them, the
tokens the response cache answered (`cached`, free) and the part sent through a batch API (`batch`). Each state is `workbench.runfiles.run_state`'s reading of the
run's marker, manifest, progress and launch record; a run with a corrupt file among them is listed as
unreadable (with the file and field under the table) and the listing goes on.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workspace", nargs="?", default="runs", help="directory holding run directories "
                                                                    "(default: runs)")
    parser.add_argument("--usage", action="store_true", help="token and cost totals per stage and overall")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _n(value: object) -> str:
    return "-" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def _cost(value: float | None) -> str:
    return "-" if value is None else f"${value:,.4f}"


def _wall(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{seconds:.1f}s"


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) if c[:1].isdigit() or c[:1] in "$-" else c.ljust(w)
                       for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip() for r in [header, *rows]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from workbench.runs import list_runs, usage_totals

    runs = list_runs(args.workspace)
    if args.usage:
        totals = usage_totals(runs)
        if args.json:
            print(json.dumps(totals, indent=2))
            return 0
        columns = {"runs": "runs", "requests": "requests", "prefill_tokens": "prefill", "sampled_tokens": "sampled",
                   "cached_requests": "cached req", "cached_prefill_tokens": "cached prefill",
                   "cached_sampled_tokens": "cached sampled", "batch_requests": "batch req",
                   "batch_prefill_tokens": "batch prefill", "batch_sampled_tokens": "batch sampled",
                   "trained_tokens": "trained"}
        rows = [[stage, *(_n(t[k]) for k in columns), _cost(t["cost_usd"])] for stage, t in totals.items()]
        print(table(rows, ["stage", *columns.values(), "cost"]) if rows else f"no runs under {args.workspace}")
        return 0
    if args.json:
        print(json.dumps(runs, indent=2))
        return 0
    if not runs:
        print(f"no runs under {args.workspace}")
        return 0
    rows = []
    for r in runs:
        state = r["state"]
        if state == "running" and r["total"]:
            state = f"running {r['done'] or 0}/{r['total']}"
        rows.append([r["name"], r["stage"] or "?", state, _n(r["rows_in"]), _n(r["rows_out"]),
                     _n(r["prefill_tokens"]), _n(r["sampled_tokens"]), _n(r["trained_tokens"]), _cost(r["cost_usd"]),
                     _wall(r["wall_seconds"]), (r["started_at"] or "-").replace("+00:00", "Z")])
    print(table(rows, ["run", "stage", "state", "rows in", "rows out", "prefill", "sampled", "trained", "cost",
                       "wall", "started"]))
    for r in runs:  # why a run failed or cannot be read: one line each, under the table
        if r["state"] in ("failed", "unreadable") and r["error"]:
            print(f"{r['name']}: {r['state']}: {r['error'].splitlines()[0][:300]}")
    return 0
