"""`wb demo report --raw EVAL RUN... --curated EVAL RUN... ... --output DIR`: the demo's result table and
notes from finished runs, the last step of the demo recipe (examples/recipes/demo.yaml). Each stage flag
takes that stage's eval run first, then the runs whose tokens, cost and wall time the stage's row counts;
the table is the one `wb demo` prints (demo/report.py), saved as DIR/report.md too.
"""

from __future__ import annotations

import argparse

# (flag, the table's row, the row it is compared with): the rows and baselines of `wb demo`'s table
STAGES = (("raw", "1 raw data", None), ("curated", "2 curated", "1 raw data"),
          ("mixture", "3 mixture (chosen)", "2 curated"), ("teacher", "teacher (reference)", ""),
          ("distilled", "4 distil + SFT", "3 mixture (chosen)"), ("dpo", "5 DPO (delta pairs, RPO)", "4 distil + SFT"),
          ("grpo", "6 GRPO", "5 DPO (delta pairs, RPO)"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, row, _ in STAGES:
        parser.add_argument(f"--{flag}", nargs="+", metavar="RUN", required=flag != "dpo",
                            help=f"row '{row}': its eval run, then the runs it cost")
    parser.add_argument("--data", required=True, help="the `wb demo data` run (the raw files, the sizes)")
    parser.add_argument("--leak-eval", required=True, help="the eval run of the model trained with the leaks left in")
    parser.add_argument("--output", required=True, help="the run directory to write (report.md)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from demo.report import leak_note, table
    from demo.stages import PRICES, Row, usage_of
    from demo.toytask import TASK
    from workbench.rundir import RunDir, read_manifest
    from workbench.runfiles import MIXTURE, read_json, write_atomic

    rows: dict[str, Row] = {}
    runs: dict[str, Path] = {}  # by stage name in their manifests, for the notes
    for flag, name, baseline in STAGES:
        given = getattr(args, flag)
        if not given:
            continue
        evaluation, *spent = [Path(p) for p in given]
        row = rows[name] = Row(name, baseline if baseline is None or baseline in rows or baseline == "" else
                               list(rows)[-1], [evaluation])
        for run in dict.fromkeys(spent):  # `mix run` works in its plan's directory: count that run once
            manifest = read_manifest(run)
            tokens, cost = usage_of(run)
            row.tokens, row.cost = row.tokens + tokens, row.cost + cost
            row.seconds += manifest.get("wall_seconds") or 0.0
            runs.setdefault(manifest.get("stage"), run)
    data = read_manifest(args.data)
    notes = []
    if "curate" in runs:
        dropped = read_manifest(runs["curate"])["dropped"]
        notes.append("curate removed " + (", ".join(f"{v:,} {k}" for k, v in dropped.items()) or "nothing"))
    if "mix-fit" in runs and "mix-search" in runs:
        cv = read_manifest(runs["mix-fit"]).get("cv", {})
        weights = (read_json(runs["mix-search"] / MIXTURE) or {}).get("weights", {})
        ranks = ", ".join(f"{k} {v['spearman']:+.2f}" for k, v in cv.items() if "spearman" in v)
        notes.append(f"mixture: {data['config']['proxies']} proxies, cross-validated Spearman of the fit: {ranks}; "
                     "chosen weights " + ", ".join(f"{d} {w:.2f}" for d, w in weights.items()))
    if "distill" in runs:
        m = read_manifest(runs["distill"])
        v = m.get("verified_counts") or {}
        notes.append(f"distil: {v.get('true', 0):,} of {m['units']:,} teacher answers passed the exact verifier; "
                     f"SFT trains on {m['sft_rows']:,}")
    notes.append(leak_note(Path(args.data) / data["files"][TASK], Path(args.leak_eval), runs["curate"],
                           data["config"]["leak_steps"]))
    notes.append(f"cost at example prices, USD per million tokens: prompt {PRICES['prefill']}, sampled "
                 f"{PRICES['sampled']}, trained {PRICES['trained']}; wall time from each run's manifest")
    heldout = data["rows"]["heldout"]
    text = (f"== results: accuracy on {heldout} held-out items (exact match, greedy), 95% interval\n"
            + table(rows) + "\n" + "\n".join(f"  - {n}" for n in notes))
    with RunDir(args.output, "demo report", {"stages": [s for s, *_ in STAGES]}, argv=args.argv) as run:
        write_atomic(Path(run.path) / "report.md", text + "\n")
        run.finish(rows_in=None, rows_out=len(rows))
    print(text)
    return 0
