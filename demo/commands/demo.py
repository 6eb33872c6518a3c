"""`wb demo`: the whole post-training loop on a toy verifiable task, with every stage's measured effect.

The task (demo/toytask.py): sort 5-10 digits in descending order, answer after `####`, checked by
exact string. A ~0.5M-parameter model learns it in minutes on 2 CPU cores, so each stage can be scored
on 300 held-out items and the demo prints one table: stage, held-out accuracy with its 95% interval and on
the 9-10 digit items alone, change vs the previous stage (paired bootstrap over items; across seeds with
`--seeds`), tokens, cost at example prices, and wall time. Every number comes from the runs under
`--output`; each stage is the real `wb` command a user would type (printed before it runs).

The story: the user's data (four look-alike digit tasks, 5-8 digits only) comes with planted duplicates,
answers that never stop, refusals and copies of held-out items. Stages: SFT on it as it is -> on it after
`wb curate` -> on a RegMix mixture of the curated domains (`wb mix`) -> distillation from a teacher that
handles 5-10 digits, with exact verification, then SFT -> delta-pair DPO with an NLL term (RPO) -> GRPO,
with `wb eval` after each. Stages 1-3 train the same number of steps from the same random model; 4-6
continue from the stage before. With `--seeds N` the student stages repeat per seed and a control (stage
4's SFT continued for the tokens stages 5 and 6 trained) is added. The teacher is the same small model
trained long on 5-10 digit ground truth, standing in for an API model.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from demo.report import leak_note, table
from demo.stages import PRICES, Demo, Settings
from workbench.errors import WorkbenchError
from workbench.runs import is_run_dir

MARKER = ".wb-demo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="runs/demo", help="directory for the demo's runs (default: runs/demo)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="student training seeds; > 1 reports mean and spread per stage and adds a control "
                             "(default: 1)")
    parser.add_argument("--quick", action="store_true", help="tiny settings that only exercise the plumbing (tests)")


def fresh_output(out: Path) -> None:
    """Start the demo from scratch each time, in a directory it owns: one it marked, or one holding only
    `wb` run directories (an earlier demo); any other non-empty folder is refused, never deleted."""
    only_runs = out.exists() and all(c.is_dir() and is_run_dir(c) for c in out.iterdir())
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists() and not only_runs:
        raise WorkbenchError(f"{out}: exists and was not made by `wb demo`; choose an empty --output")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("made by wb demo; removed and rebuilt on every run\n")


def run(args: argparse.Namespace) -> int:
    import torch
    from transformers.utils import logging as hf_logging

    if args.seeds < 1:
        raise WorkbenchError(f"--seeds {args.seeds}: must be at least 1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    # two threads: on 2 cores they train the toy model 16-20% and sample it 25-35% faster than one (measured);
    # more threads do not pay for matrices this small
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    started = time.time()
    out = Path(args.output)
    fresh_output(out)
    demo = Demo(out, Settings.quick() if args.quick else Settings(), args.seeds)
    demo.row("1 raw data")
    demo.shared()
    for seed in range(args.seeds):
        demo.student(seed)
    order = ["1 raw data", "2 curated", "3 mixture (chosen)", "teacher (reference)", "4 distil + SFT",
             "5 DPO (delta pairs, RPO)", "6 GRPO", "control: SFT, tokens of 5+6"]
    rows = {k: demo.rows[k] for k in order if k in demo.rows}
    print(f"\n== results: accuracy on {demo.s.heldout} held-out items (exact match, greedy), 95% interval"
          + (f"; mean ± sd over {args.seeds} seeds [min-max]" if args.seeds > 1 else ""))
    print(table(rows))
    from demo.toytask import TASK

    notes = [*demo.notes, leak_note(demo.files[TASK], demo.leaky_eval, out / "curated", demo.s.leak_steps),
             "change: against the row above (the teacher is a reference; 4 is measured against 3); a paired "
             "bootstrap over items decides whether it exceeds noise"
             + ("; with one seed that is item noise only: the training order moves a student by a few points, "
                "so run --seeds 3 before trusting a small change" if demo.seeds == 1 else
                ", and 'yes' needs every seed significant in the same direction"),
             f"cost at example prices, USD per million tokens: prompt {PRICES['prefill']}, sampled "
             f"{PRICES['sampled']}, trained {PRICES['trained']}; tokens and wall time of the first seed's runs"]
    print("\n".join(f"  - {n}" for n in notes))
    print(f"\ndemo finished in {time.time() - started:.0f} s; runs are under {out}/")
    print(f"look at them in the app: wb ui --workspace {out}   (then open http://127.0.0.1:8501)")
    return 0
