"""`wb demo data --output DIR [--quick]`: the demo's inputs as one run directory, for the demo recipe
(examples/recipes/demo.yaml): the user's four raw digit tasks with their planted problems (`raw/`), the
held-out benchmark, the teacher's training rows, fresh prompts, and the random toy model every student
starts from (`init-model/`). Same seed, same files: `wb demo` writes exactly these.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, help="the run directory to write")
    parser.add_argument("--quick", action="store_true", help="the demo's tiny sizes (tests)")


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict
    from pathlib import Path

    from demo.stages import Settings
    from demo.toytask import save_toy_model, write_task
    from workbench.rundir import RunDir

    s = Settings.quick() if args.quick else Settings()
    with RunDir(args.output, "demo data", {"quick": args.quick, **asdict(s)}, argv=args.argv) as run:
        files = write_task(run.path, s.train, s.heldout, s.other, s.duplicates, s.loops, s.refusals, s.leaked,
                           s.leak_copies, s.teacher_rows, seed=0)
        save_toy_model(Path(run.path) / "init-model")
        rows = {name: sum(1 for _ in path.open()) for name, path in files.items()}
        run.finish(rows_in=0, rows_out=sum(rows.values()), files={k: str(p.relative_to(run.path))
                                                                   for k, p in files.items()}, rows=rows)
    for name, path in files.items():
        print(f"  {name:<9} {rows[name]:>6,} rows  {path}")
    return 0
