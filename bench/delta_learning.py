"""Delta learning (Geng et al. 2025) on the demo's toy task: does DPO on pairs from two models that are both
weaker than the student (a medium model chosen, a weak one rejected) improve the student?

    nice -n 10 python bench/delta_learning.py [--out runs/bench/delta] [--seeds 3] [--sweep]

Everything runs through `wb` commands in this process, as a user would type them (`demo.stages.wb`): a model
ladder trained on ground truth for fewer steps (weak, medium) and more (the student, one per seed),
`wb prefs --strategy delta` with the medium model as strong and the weak one as weak (greedy, as the
paper), `wb train dpo` from each student (length-normalised DPO, the paper's `dpo_norm`), the paper's
control (`wb train sft` on the chosen side, i.e. the medium model's answers, same pairs, same epoch) and
`wb eval` on the 300 held-out items. It prints the pairs' make-up (verdicts against the ground truth,
length bias, which side is right where the answers first differ) and one table: accuracy mean over seeds,
the paired difference against the same seed's student, its 95% t-interval over seeds, the seeds, the items
it fixed and broke against that student (means over seeds), and how often the student already ranked the
chosen answer above the rejected one (its reference log-probs).
`--sweep` adds the measurements that explain the result: the delta's size (models further apart, and a
chosen side better than the student), the pair count, length-matched pairs only, verifier-filtered pairs
only, an NLL term on the chosen side (RPO) and the learning rates. Measured on a 2-core machine shared
with seven other jobs (load 10-16): 25 minutes for `--seeds 4` (about 4 per seed and 5 shared), so the
default is 3 seeds; `--sweep` adds about 16 minutes for 4 seeds (its three prefs runs about 6 more).
A re-run skips every finished run (its manifest exists), so an interrupted bench resumes.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from demo.stages import wb  # noqa: E402 - after the path set-up, so the script runs from a checkout
from workbench.runfiles import MANIFEST, PRODUCT  # noqa: E402

EVAL_TOKENS = 16  # "#### " and up to 10 digits, with room for a model that does not stop


@dataclass
class Ladder:
    """SFT steps on ground truth (batch 64, lr 3e-3) for each model of the ladder: fewer steps, weaker model.
    Measured here (held-out accuracy, training seed 0): 30 steps 0.3%, 60 steps 14%, 120 steps 28%, 200 steps 73%
    (73-88% over seeds 0-3), 240 steps 90%."""

    weak: int = 60
    medium: int = 120
    student: int = 200
    far_weak: int = 30  # the sweep: a wider delta below the same medium model
    strong: int = 240  # the sweep: a chosen side better than the student


@dataclass
class Condition:
    """One row of the table: a training from each seed's student (None: the student itself)."""

    name: str
    command: list[str] | None = None  # `wb train ...` arguments without --model/--seed/--output
    evals: list[Path] = field(default_factory=list)
    runs: list[Path] = field(default_factory=list)  # the training run of each seed


class Bench:
    """The bench's runs under `out`: each method runs one `wb` command unless its run finished before."""

    def __init__(self, out: Path, pair_prompts: int, dpo_lr: float, sft_lr: float):
        from demo.toytask import save_toy_model, write_task

        self.out, self.dpo_lr, self.sft_lr = out, dpo_lr, sft_lr
        prompts = out / "data" / "prompts.jsonl"
        if prompts.exists():
            self.files = {n: out / "data" / f"{n}.jsonl" for n in ("heldout", "teacher", "prompts")}
            made = sum(1 for _ in prompts.open())
            if made != pair_prompts:
                raise SystemExit(f"{prompts}: made with --pair-prompts {made}, not {pair_prompts}; "
                                 "use another --out")
        else:
            self.files = write_task(out / "data", train=pair_prompts, heldout=300, other=10, duplicates=0, loops=0,
                                    refusals=0, leaked=0, leak_copies=0, teacher=6000, seed=0)
        self.init = out / "init-model"
        if not (self.init / "config.json").exists():
            save_toy_model(self.init)

    def sft(self, name: str, model: Path, data: Path, seed: int, *args: object) -> Path:
        run = self.out / name
        if not (run / MANIFEST).exists():
            wb("train", "sft", "--model", model, "--data", data, "--max-length", 64, "--seed", seed,
               "--eval-fraction", 0, "--save-every", 0, "--log-every", 1000, "--output", run, *args)
        return run / "model"

    def ladder_model(self, steps: int, seed: int = 0) -> Path:
        return self.sft(f"ladder-{steps}-s{seed}", self.init, self.files["teacher"], seed, "--prompt-field",
                        "question", "--completion-field", "answer", "--max-steps", steps, "--batch-size", 64,
                        "--lr", 3e-3)

    def eval(self, model: Path, name: str) -> Path:
        run = self.out / f"eval-{name}"
        if not (run / MANIFEST).exists():
            wb("eval", "--model", model, "--benchmark", self.files["heldout"], "--prompt-field", "question",
               "--verify", "exact", "--max-tokens", EVAL_TOKENS, "--progress-seconds", 0, "--output", run)
        return run

    def pairs(self, strong: int, weak: int, limit: int | None = None) -> Path:
        """`wb prefs --strategy delta`: the `strong`-step model chosen, the `weak`-step one rejected, greedy."""
        run = self.out / (f"pairs-{strong}-vs-{weak}" + (f"-{limit}" if limit else ""))
        if not (run / MANIFEST).exists():
            wb("prefs", self.files["prompts"], "--strategy", "delta", "--strong-model", self.ladder_model(strong),
               "--strong-backend", "hf", "--weak-model", self.ladder_model(weak), "--weak-backend", "hf",
               "--prompt-field", "question", "--temperature", 0, "--max-tokens", EVAL_TOKENS,
               "--progress-seconds", 0, *(["--limit", limit] if limit else []), "--output", run)
        return run

    def dpo(self, pairs: Path | str, lr: float | None = None) -> list[str]:
        return ["dpo", "--data", str(pairs), "--loss-type", "sigmoid_norm", "--beta", "5", "--lr",
                str(lr or self.dpo_lr), "--epochs", "1", "--batch-size", "32"]

    def sft_on_chosen(self, pairs: Path | str, lr: float | None = None) -> list[str]:
        """The paper's control: SFT on the chosen answers of the same pairs (same prompts, one epoch)."""
        return ["sft", "--data", str(pairs), "--completion-field", "chosen", "--lr", str(lr or self.sft_lr),
                "--epochs", "1", "--batch-size", "32"]

    def run_condition(self, cond: Condition, seed: int, student: Path) -> None:
        tag = f"{slug(cond.name)}-s{seed}"
        if cond.command is None:
            cond.evals.append(self.eval(student, tag))
            return
        run = self.out / tag
        if not (run / MANIFEST).exists():
            extra = ["--eval-fraction", "0"] if cond.command[0] == "sft" else []
            wb("train", *cond.command, "--model", student, "--max-length", 64, "--seed", seed, "--save-every", 0,
               "--log-every", 1000, *extra, "--output", run)
        cond.runs.append(run)
        cond.evals.append(self.eval(run / "model", tag))


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")[:60]


def accuracy(run: Path) -> float:
    from workbench.rundir import read_manifest

    return float(read_manifest(run)["metrics"]["heldout"]["accuracy"])


def fixed_broken(base: Path, run: Path) -> tuple[int, int]:
    """(items `run` gets right that `base` got wrong, items `base` got right that `run` gets wrong)."""
    import pyarrow.parquet as pq

    def correct(r: Path) -> dict[str, bool]:
        t = pq.read_table(r / PRODUCT, columns=["item_id", "correct"])
        return dict(zip(t.column("item_id").to_pylist(), map(bool, t.column("correct").to_pylist()), strict=True))

    a, b = correct(base), correct(run)
    return sum(b[i] and not a[i] for i in a), sum(a[i] and not b[i] for i in a)


def paired_interval(diffs: list[float]) -> tuple[float, float, float]:
    """(mean, low, high): the mean paired difference over seeds and its 95% Student-t interval."""
    from scipy.stats import t

    n = len(diffs)
    mean = sum(diffs) / n
    if n < 2:
        return mean, float("nan"), float("nan")
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = float(t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def table(conditions: list[Condition], base: Condition) -> str:
    """Rows: condition; columns: accuracy mean, paired difference vs the student, its 95% interval, seeds,
    rows trained on, items fixed/broken vs the student, how often the student already preferred the chosen."""
    from workbench.rundir import read_manifest

    head = (f"{'condition':<52} {'accuracy':>9} {'vs student':>11} {'95% interval':>17} {'seeds':>6} "
            f"{'rows':>6} {'fixed/broken':>13} {'student prefers chosen':>23}")
    lines = [head, "-" * len(head)]
    for cond in conditions:
        accs = [100 * accuracy(r) for r in cond.evals]
        shown = f"{sum(accs) / len(accs):>8.1f}%"
        if cond is base or not cond.runs:  # the student itself, or a reference model scored once
            lines.append(f"{cond.name:<52} {shown} {'':>11} {'':>17} {len(accs):>6}")
            continue
        diffs = [a - 100 * accuracy(b) for a, b in zip(accs, base.evals, strict=True)]
        mean, low, high = paired_interval(diffs)
        prefers = [p for p in map(student_prefers_chosen, cond.runs) if p is not None]
        agree = f"{100 * sum(prefers) / len(prefers):.0f}%" if prefers else ""
        churn = [fixed_broken(b, r) for b, r in zip(base.evals, cond.evals, strict=True)]
        moved = f"{sum(f for f, _ in churn) / len(churn):.0f}/{sum(b for _, b in churn) / len(churn):.0f}"
        trained = read_manifest(cond.runs[0])["rows_out"]  # pairs (DPO) or answers (SFT) trained on, one epoch
        interval = f"[{low:+.1f}, {high:+.1f}]" if len(diffs) > 1 else "needs 2 seeds"
        lines.append(f"{cond.name:<52} {shown} {mean:>+11.1f} {interval:>17} {len(accs):>6} "
                     f"{trained:>6,} {moved:>13} {agree:>23}")
    return "\n".join(lines)


def student_prefers_chosen(run: Path) -> float | None:
    """Share of a DPO run's pairs whose chosen answer its starting model (the reference) already gives a
    higher log-prob than the rejected one; None for a run without cached reference log-probs."""
    import pyarrow.parquet as pq

    path = run / "ref_logps.parquet"
    if not path.exists():
        return None
    ref = pq.read_table(path)
    chosen, rejected = ref.column("chosen").to_pylist(), ref.column("rejected").to_pylist()
    return sum(c > r for c, r in zip(chosen, rejected, strict=True)) / max(len(chosen), 1)


def first_difference(right: str, chosen: str, rejected: str) -> str:
    """Where a pair's answers first differ (each digit is one token; `$` stands for the end of the answer):
    `chosen_right` or `rejected_right` (that side's character there is the correct one), `neither`, or
    `prefix_wrong` (the shared part before it is already wrong). DPO's gradient on the shared prefix cancels,
    so this is the first token it pushes on."""
    right, chosen, rejected = right + "$", chosen + "$", rejected + "$"
    i = next((i for i in range(min(len(chosen), len(rejected))) if chosen[i] != rejected[i]), None)
    if i is None:  # the same answer once whitespace is stripped
        return "neither"
    if chosen[:i] != right[:i]:
        return "prefix_wrong"
    return "chosen_right" if chosen[i] == right[i] else "rejected_right" if rejected[i] == right[i] else "neither"


def pair_makeup(run: Path) -> str:
    """What a prefs run kept, judged against the ground truth (the pairs were made without a verifier):
    pairs kept and dropped by reason, chosen right / both wrong / inverted, how often chosen is longer."""
    import pyarrow.parquet as pq

    from workbench.rundir import read_manifest

    stats = read_manifest(run)["pair_stats"]
    rows = pq.read_table(run / PRODUCT, columns=["prompt", "chosen", "rejected", "chosen_tokens",
                                                  "rejected_tokens"]).to_pylist()
    counts = {"chosen_right": 0, "both_right": 0, "both_wrong": 0, "inverted": 0}
    first = {"chosen_right": 0, "rejected_right": 0, "neither": 0, "prefix_wrong": 0}
    longer = shorter = 0
    for r in rows:
        right = gold(r["prompt"])
        c, w = r["chosen"][-1]["content"].strip() == right, r["rejected"][-1]["content"].strip() == right
        counts["both_right" if c and w else "chosen_right" if c else "inverted" if w else "both_wrong"] += 1
        first[first_difference(right, r["chosen"][-1]["content"].strip(), r["rejected"][-1]["content"].strip())] += 1
        longer += r["chosen_tokens"] > r["rejected_tokens"]
        shorter += r["chosen_tokens"] < r["rejected_tokens"]
    n = max(len(rows), 1)
    dropped = ", ".join(f"{k} {v}" for k, v in stats["dropped"].items()) or "none"
    shares = ", ".join(f"{k} {100 * v / n:.0f}%" for k, v in counts.items())
    at_first = ", ".join(f"{k} {100 * v / n:.0f}%" for k, v in first.items())
    return (f"{run.name}: {len(rows):,} of {stats['candidates']:,} pairs kept (dropped: {dropped})\n"
            f"    answers: {shares}; chosen longer {100 * longer / n:.0f}%, shorter {100 * shorter / n:.0f}%\n"
            f"    first differing token: {at_first}")


def gold(prompt: list[dict]) -> str:
    """The right answer to a toy-task prompt (its messages), as the models write it."""
    from demo.toytask import DOMAINS, TASK

    return "#### " + DOMAINS[TASK][1](prompt[-1]["content"].split()[-1])


def filtered_pairs(run: Path, name: str, keep: str, first: int | None = None) -> Path:
    """A copy of a prefs run's pairs keeping only `keep`: `equal_length` (chosen and rejected the same
    number of tokens: no length signal), `chosen_right` (the chosen answer is correct: what a verifier
    would keep) or `all`; then only the `first` of them (a pair count matched to another condition)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from workbench.io import write_table

    out = run.parent / name / PRODUCT
    if out.exists():
        return out
    table = pq.read_table(run / PRODUCT)
    if keep == "equal_length":
        mask = [a == b for a, b in zip(table.column("chosen_tokens").to_pylist(),
                                       table.column("rejected_tokens").to_pylist(), strict=True)]
    elif keep == "chosen_right":
        mask = [c[-1]["content"].strip() == gold(p)
                for p, c in zip(table.column("prompt").to_pylist(), table.column("chosen").to_pylist(), strict=True)]
    else:
        mask = [True] * table.num_rows
    kept = table.filter(pa.array(mask))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_table(kept.slice(0, first) if first is not None else kept, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/bench/delta", help="where the runs go (re-running resumes)")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds: one student, DPO and SFT each")
    parser.add_argument("--pair-prompts", type=int, default=3000, help="prompts both models answer")
    parser.add_argument("--dpo-lr", type=float, default=1e-5, help="DPO learning rate (beta 5, length-normalised)")
    parser.add_argument("--sft-lr", type=float, default=1e-3, help="the SFT control's learning rate")
    parser.add_argument("--sweep", action="store_true", help="add the conditions that explain the result")
    args = parser.parse_args(argv)
    from workbench.rundir import read_manifest
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the toy model is faster on one thread per process
    bench = Bench(Path(args.out), args.pair_prompts, args.dpo_lr, args.sft_lr)
    lad = Ladder()

    refs = [("weak", lad.weak), ("medium", lad.medium)]
    if args.sweep:
        refs += [("far-weak", lad.far_weak), ("strong", lad.strong)]
    ladder = [Condition(f"{n} model ({steps} steps, reference)") for n, steps in refs]
    for cond, (n, steps) in zip(ladder, refs, strict=True):
        cond.evals.append(bench.eval(bench.ladder_model(steps), f"ladder-{n}"))
    main_pairs = bench.pairs(lad.medium, lad.weak)
    student = Condition(f"student ({lad.student} steps), no training")
    conditions = [
        student,
        Condition(f"DPO on delta pairs ({lad.medium} vs {lad.weak} steps)", bench.dpo(main_pairs)),
        Condition(f"SFT on the medium model's answers ({lad.medium} steps)", bench.sft_on_chosen(main_pairs)),
    ]
    makeup = [pair_makeup(main_pairs)]
    if args.sweep:
        wider, above = bench.pairs(lad.medium, lad.far_weak), bench.pairs(lad.strong, lad.weak)
        fewer = bench.pairs(lad.medium, lad.weak, limit=args.pair_prompts // 4)
        makeup += [pair_makeup(p) for p in (wider, above, fewer)]
        matched = read_manifest(main_pairs)["rows_out"]  # delta size apart from pair count
        conditions += [
            Condition(f"DPO, wider delta ({lad.medium} vs {lad.far_weak} steps)", bench.dpo(wider)),
            Condition(f"DPO, chosen above the student ({lad.strong} vs {lad.weak})", bench.dpo(above)),
            Condition(f"DPO, wider delta, first {matched:,} pairs",
                      bench.dpo(filtered_pairs(wider, "pairs-wider-matched", "all", matched))),
            Condition(f"DPO, chosen above the student, first {matched:,} pairs",
                      bench.dpo(filtered_pairs(above, "pairs-above-matched", "all", matched))),
            Condition(f"DPO, a quarter of the prompts ({args.pair_prompts // 4})", bench.dpo(fewer)),
            Condition("DPO, equal-length pairs only",
                      bench.dpo(filtered_pairs(main_pairs, "pairs-equal-length", "equal_length"))),
            Condition("DPO, pairs whose chosen answer is right only",
                      bench.dpo(filtered_pairs(main_pairs, "pairs-chosen-right", "chosen_right"))),
            Condition(f"DPO, lr {3 * args.dpo_lr:.0e} (3x)", bench.dpo(main_pairs, 3 * args.dpo_lr)),
            Condition("DPO + NLL on the chosen answers (RPO, alpha 1)", [*bench.dpo(main_pairs), "--rpo-alpha", "1"]),
            Condition(f"SFT on the medium model's answers, lr {args.sft_lr / 10:.0e} (1/10)",
                      bench.sft_on_chosen(main_pairs, args.sft_lr / 10)),
        ]
    for seed in range(args.seeds):
        model = bench.ladder_model(lad.student, seed)
        for cond in conditions:
            bench.run_condition(cond, seed, model)

    print("\n== pairs (verdicts against the ground truth; the pairs were made without a verifier)")
    for line in makeup:
        print("  " + line)
    print(f"\n== held-out accuracy, 300 items, greedy; difference vs the same seed's student in points, "
          f"95% t-interval over seeds\n{table([*ladder, *conditions], student)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
