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
import json
import math
import os
import shlex
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.rundir import read_manifest
from workbench.runfiles import MANIFEST, MIXTURE, PRODUCT, RESULTS, read_json
from workbench.runs import is_run_dir

# example prices, USD per million tokens: an API teacher's prompt / completion tokens, and trained tokens
PRICES = {"prefill": 0.50, "sampled": 2.00, "trained": 1.00}
MARKER = ".wb-demo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="runs/demo", help="directory for the demo's runs (default: runs/demo)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="student training seeds; > 1 reports mean and spread per stage and adds a control "
                             "(default: 1)")
    parser.add_argument("--quick", action="store_true", help="tiny settings that only exercise the plumbing (tests)")


@dataclass
class Settings:
    """The demo's sizes; `quick` shrinks everything to seconds (numbers then show plumbing, not effects)."""

    train: int = 3000
    heldout: int = 300
    other: int = 3000
    duplicates: int = 600
    loops: int = 4000  # more than the clean rows: a model trained on the raw data never stops
    refusals: int = 300
    leaked: int = 20
    leak_copies: int = 40
    teacher_rows: int = 6000
    student_steps: int = 300
    teacher_steps: int = 400
    leak_steps: int = 150  # the contamination check: SFT on the target domain with the leaks left in
    mix_rows: int = 12000
    distill_prompts: int = 1500
    distill_steps: int = 70
    distill_lr: float = 1e-3  # continued SFT: 3e-3 unlearns the short items while it learns the long ones
    pair_prompts: int = 1000
    dpo_steps: int = 30
    dpo_lr: float = 1e-4
    grpo_steps: int = 150
    grpo_lr: float = 2e-4
    proxies: int = 16
    proxy_tokens: int = 30_000
    distill_verify: str = "exact"  # the quick teacher gets nothing right, so it keeps every answer unchecked

    @classmethod
    def quick(cls) -> Settings:
        return cls(train=300, heldout=16, other=300, duplicates=20, loops=10, refusals=10, leaked=4, leak_copies=2,
                   teacher_rows=300, student_steps=40, teacher_steps=40, leak_steps=3, mix_rows=300,
                   distill_prompts=24, distill_steps=2, pair_prompts=24, dpo_steps=2, grpo_steps=2, proxies=6, proxy_tokens=8_000,
                   distill_verify="none")


def wb(*args: object) -> float:
    """Run one `wb` command in this process, printing it first; return its wall time; stop if it fails."""
    from workbench.cli import main

    argv = [str(a) for a in args]
    print(f"\n$ wb {shlex.join(argv)}", flush=True)
    started = time.perf_counter()
    code = main(argv)
    if code:
        raise WorkbenchError(f"the demo stage `wb {argv[0]}` failed (exit {code}); see the message above")
    return time.perf_counter() - started


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


def usage_of(run: Path) -> tuple[int, float]:
    """(tokens, cost at PRICES) of a finished run: prefill + sampled + trained tokens in its manifest."""
    u = read_manifest(run)["usage"]
    tokens = u["prefill_tokens"] + u["sampled_tokens"] + u["trained_tokens"]
    return tokens, sum(u[f"{k}_tokens"] * p for k, p in PRICES.items()) / 1e6


@dataclass
class Row:
    """One line of the table: its eval run per seed, what it cost (first seed), and what it is compared with."""

    stage: str
    baseline: str | None = None  # the row this one's change is measured against
    evals: list[Path] = field(default_factory=list)
    tokens: int = 0
    cost: float = 0.0
    seconds: float = 0.0


class Demo:
    """The demo's stages; `rows` fills in as they run."""

    def __init__(self, out: Path, settings: Settings, seeds: int):
        self.out, self.s, self.seeds = out, settings, seeds
        self.rows: dict[str, Row] = {}
        self.notes: list[str] = []
        self.leaky_eval: Path | None = None  # seed 0's model trained with the benchmark copies left in

    def run(self, row: Row | None, *args: object, seed: int = 0) -> None:
        """`wb ARGS`; its wall time, and the tokens and cost in the manifest of its `--output`, go to `row`
        (first seed only: every seed costs the same)."""
        seconds = wb(*args)
        if row is None or seed:
            return
        row.seconds += seconds
        argv = [str(a) for a in args]
        if "--output" in argv:
            tokens, cost = usage_of(Path(argv[argv.index("--output") + 1]))
            row.tokens, row.cost = row.tokens + tokens, row.cost + cost

    def row(self, stage: str, baseline: str | None = None) -> Row:
        if stage not in self.rows:
            self.rows[stage] = Row(stage, baseline if baseline is not None else (list(self.rows)[-1] if self.rows
                                                                                 else None))
        return self.rows[stage]

    def eval(self, model: Path, name: str) -> Path:
        run = self.out / f"eval-{name}"
        wb("eval", "--model", model, "--benchmark", self.files["heldout"], "--prompt-field", "question",
           "--verify", "exact", "--max-tokens", 16, "--progress-seconds", 0, "--output", run)
        return run

    def sft(self, row: Row | None, name: str, model: Path, data: Path, steps: int, seed: int,
            lr: float = 3e-3) -> Path:
        run = self.out / name
        self.run(row, "train", "sft", "--model", model, "--data", data, "--prompt-field", "question",
                 "--completion-field", "answer", "--max-steps", steps, "--batch-size", 64, "--lr", lr,
                 "--max-length", 64, "--seed", seed, "--eval-fraction", 0, "--save-every", 0,
                 "--log-every", max(steps // 3, 1), "--output", run, seed=seed)
        return run

    def shared(self) -> None:
        """Stages every seed shares: the data, curation, the mixture search, the teacher and its answers."""
        from demo.toytask import DOMAINS, TASK, save_toy_model, write_task

        s, out = self.s, self.out
        print("== data: the user's four digit tasks (5-8 digits) with planted problems; a 5-10 digit benchmark")
        self.files = write_task(out / "data", s.train, s.heldout, s.other, s.duplicates, s.loops, s.refusals,
                                s.leaked, s.leak_copies, s.teacher_rows, seed=0)
        self.init = save_toy_model(out / "init-model")
        for name, path in self.files.items():
            print(f"  {name:<9} {sum(1 for _ in path.open()):>6,} rows  {path}")

        print("\n== curate: filters for answers that never stop and refusals, decontamination against the "
              "benchmark, exact and near dedup")
        self.curate_row = self.row("2 curated")
        self.run(self.curate_row, "curate", *(self.files[d] for d in DOMAINS), "--field", "question", "answer",
                 "--filters", "degenerate_repetition", "refusal", "--benchmark", self.files["heldout"],
                 "--decontam-ngram", 2, "--output", out / "curated")
        dropped = read_manifest(out / "curated")["dropped"]
        self.notes.append("curate removed " + (", ".join(f"{v:,} {k}" for k, v in dropped.items()) or "nothing"))
        print("\n== the target domain with the same filters but no decontamination or dedup: what the leaked "
              "benchmark copies do to a score")
        self.run(None, "curate", self.files[TASK], "--field", "question", "answer", "--filters",
                 "degenerate_repetition", "refusal", "--no-decontam", "--no-dedup", "--output", out / "filtered-only")

        print("\n== mixture search: RegMix proxies over the four curated domains; target: benchmark bits per byte")
        self.mix_row = self.row("3 mixture (chosen)")
        domain_files = split_by_domain(out / "curated" / PRODUCT, out / "curated-domains")
        domains = out / "domains.yaml"
        domains.write_text(json.dumps({
            "domains": {d: {"sources": [str(p)], "field": "text"} for d, p in domain_files.items()},
            "validation": {"heldout": {"sources": [str(self.files["heldout"])], "field": "text"}},
            "heldout_fraction": 0.05, "max_epochs": 8}))
        self.run(self.mix_row, "mix", "plan", domains, "--output", out / "mix-plan", "--runs", s.proxies,
                 "--tokens-per-run", s.proxy_tokens)
        self.run(self.mix_row, "mix", "run", out / "mix-plan", "--tokens-per-run", s.proxy_tokens, "--workers", 2,
                 "--eval-tokens", 4096)
        self.run(self.mix_row, "mix", "fit", out / "mix-plan" / RESULTS, "--output", out / "mix-fit",
                 "--target", "bpb.heldout", "--folds", 4)
        self.run(self.mix_row, "mix", "search", out / "mix-fit", "--output", out / "mix-search", "--samples", 20_000,
                 "--top-k", 50)
        weights = read_json(out / "mix-search" / MIXTURE)["weights"]
        cv = read_manifest(out / "mix-fit").get("cv", {})
        ranks = ", ".join(f"{k} {v['spearman']:+.2f}" for k, v in cv.items() if "spearman" in v)
        self.notes.append(f"mixture: {s.proxies} proxies, cross-validated Spearman of the fit: {ranks}; chosen weights "
                          + ", ".join(f"{d} {w:.2f}" for d, w in weights.items())
                          + "; stage 2 trains on the four curated domains in equal parts, so 3 vs 2 is the chosen "
                            "mixture against uniform at the same compute")
        self.run(self.mix_row, "mix", "build", out / "mix-search" / MIXTURE, "--rows", s.mix_rows,
                 "--columns", "question", "answer", "--output", out / "mix-build")
        self.mix_data = out / "mix-build"

        print("\n== teacher: the same model trained long on 5-10 digit ground truth (stands in for an API model)")
        teacher = self.row("teacher (reference)", baseline="")
        self.teacher = self.sft(teacher, "teacher", self.init, self.files["teacher"], s.teacher_steps, 0)
        teacher.evals.append(self.eval(self.teacher / "model", "teacher"))

        print("\n== distil: the teacher answers fresh 5-10 digit prompts; only exactly verified answers are kept")
        self.distill_row = self.row("4 distil + SFT", baseline="3 mixture (chosen)")
        checked = s.distill_verify != "none"
        self.run(self.distill_row, "distill", self.files["prompts"], "--backend", "hf", "--model",
                 self.teacher / "model", "--prompt-field", "question", "--answer-field", "answer",
                 "--verify", s.distill_verify, "--only-verified" if checked else "--no-only-verified",
                 "--temperature", 0, "--max-tokens", 16, "--limit", s.distill_prompts, "--progress-seconds", 0,
                 "--output", out / "distill")
        m = read_manifest(out / "distill")
        v = m["verified_counts"]
        self.notes.append(f"distil: {v['true']:,} of {m['units']:,} teacher answers passed the exact verifier; "
                          f"SFT trains on {m['sft_rows']:,}")

    def student(self, seed: int) -> None:
        """The student stages for one training seed, each scored by `wb eval`."""
        from demo.toytask import TASK

        s, out, tag = self.s, self.out, f"-s{seed}"
        print(f"\n======== student stages, seed {seed}")
        raw = self.row("1 raw data")
        self.score(raw, self.sft(raw, f"sft-raw{tag}", self.init, self.files[TASK].parent, s.student_steps,
                                 seed), f"raw{tag}")
        self.score(self.curate_row, self.sft(self.curate_row, f"sft-curated{tag}", self.init, self.out / "curated",
                                             s.student_steps, seed), f"curated{tag}")
        if seed == 0:
            leaky = self.sft(None, "sft-filtered-only", self.init, out / "filtered-only", s.leak_steps, seed)
            self.leaky_eval = self.eval(leaky / "model", "filtered-only")
        mix = self.sft(self.mix_row, f"sft-mixture{tag}", self.init, self.mix_data, s.student_steps, seed)
        self.score(self.mix_row, mix, f"mixture{tag}")

        sft = self.sft(self.distill_row, f"sft-distilled{tag}", mix / "model", out / "distill",
                       s.distill_steps, seed, s.distill_lr)
        self.score(self.distill_row, sft, f"distilled{tag}")

        dpo_row = self.row("5 DPO (delta pairs, RPO)")
        pairs, dpo = out / f"prefs{tag}", out / f"dpo{tag}"
        self.run(dpo_row, "prefs", self.files["prompts"], "--strong-model", self.teacher / "model", "--strong-backend",
                 "hf", "--weak-model", sft / "model", "--weak-backend", "hf", "--prompt-field", "question",
                 "--answer-field", "answer", "--verify", "exact", "--temperature", 1.0, "--max-tokens", 16, "--limit",
                 s.pair_prompts, "--seed", seed, "--progress-seconds", 0, "--output", pairs, seed=seed)
        start = sft
        if read_manifest(pairs)["rows_out"]:
            self.run(dpo_row, "train", "dpo", "--model", sft / "model", "--data", pairs, "--beta", 0.1, "--rpo-alpha",
                     1.0, "--lr", s.dpo_lr, "--max-steps", s.dpo_steps, "--batch-size", 32, "--max-length", 64,
                     "--seed", seed, "--save-every", 0, "--log-every", max(s.dpo_steps // 3, 1), "--output", dpo,
                     seed=seed)
            self.score(dpo_row, dpo, f"dpo{tag}")
            start = dpo
        else:
            print("\n(DPO skipped: every pair was dropped; see the prefs run's removed.parquet)")
            self.rows.pop(dpo_row.stage)

        grpo_row = self.row("6 GRPO")
        grpo = out / f"grpo{tag}"
        self.run(grpo_row, "train", "grpo", "--model", start / "model", "--prompts", self.files["prompts"],
                 "--prompt-field", "question", "--reward", "exact", "--lr", s.grpo_lr, "--max-steps", s.grpo_steps,
                 "--prompts-per-step", 16, "--num-generations", 8, "--batch-size", 64, "--max-new-tokens", 16,
                 "--max-length", 64, "--temperature", 1.0, "--dynamic-sampling", "--seed", seed, "--save-every", 0,
                 "--log-every", max(s.grpo_steps // 5, 1), "--output", grpo, seed=seed)
        self.score(grpo_row, grpo, f"grpo{tag}")

        if self.seeds > 1:  # the control: stage 4's SFT continued for the tokens stages 5 and 6 trained
            trained = sum(read_manifest(r)["usage"]["trained_tokens"]
                          for r in (dpo, grpo) if (r / MANIFEST).exists())
            per_step = read_manifest(sft)["usage"]["trained_tokens"] / s.distill_steps
            steps = max(1, round(trained / max(per_step, 1.0)))
            control = self.row("control: SFT, tokens of 5+6", baseline="6 GRPO")
            ctl = self.sft(control, f"sft-control{tag}", sft / "model", out / "distill", steps, seed, s.distill_lr)
            self.score(control, ctl, f"control{tag}")

    def score(self, row: Row, run: Path, name: str) -> None:
        row.evals.append(self.eval(run / "model", name))


def split_by_domain(data: Path, out: Path) -> dict[str, Path]:
    """One parquet file per value of `data`'s `domain` column (the mixture search's domains)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(data)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for domain in sorted(set(table.column("domain").to_pylist())):
        paths[domain] = out / f"{domain}.parquet"
        pq.write_table(table.filter(pc.equal(table.column("domain"), domain)), paths[domain])
    return paths


def accuracy(run: Path) -> tuple[float, list[float]]:
    m = read_manifest(run)["metrics"]["heldout"]
    return m["accuracy"], m["ci95"]


def item_results(run: Path) -> list[tuple[str, bool]]:
    """(question, correct) per held-out item of a `wb eval` run (one greedy sample each)."""
    import pyarrow.parquet as pq

    rows = pq.read_table(run / PRODUCT, columns=["prompt", "correct"]).to_pylist()
    return [(r["prompt"][-1]["content"], bool(r["correct"])) for r in rows]


def long_accuracy(run: Path) -> float:
    """Accuracy on the 9-10 digit items, the lengths the user's own data lacks."""
    hits = [ok for question, ok in item_results(run) if len(question.split()[-1]) > 8]
    return sum(hits) / max(len(hits), 1)


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0


def change(base: list[Path], runs: list[Path]) -> tuple[str, str]:
    """(change in points, whether it exceeds noise) of `runs` against `base`, seed by seed: one seed uses a
    paired bootstrap over items; several seeds also need every seed to agree in sign and be significant."""
    from evals import compare_runs

    diffs = [compare_runs([str(b), str(r)])[0][2] for b, r in zip(base, runs, strict=True)]
    points = [100 * d.diff for d in diffs]
    mean = sum(points) / len(points)
    if len(diffs) == 1:
        d = diffs[0]
        return f"{mean:+.1f}", f"{'yes' if d.significant else 'no'} (p={d.p_value:.3f})"
    sd = mean_sd(points)[1]
    agree = sum(d.significant and (d.diff > 0) == (mean > 0) for d in diffs)
    verdict = "yes" if agree == len(diffs) else "no" if agree == 0 else f"{agree}/{len(diffs)} seeds"
    return f"{mean:+.1f} ± {sd:.1f}", verdict


def table(rows: dict[str, Row]) -> str:
    """The demo's result table (see the module docstring)."""
    head = (f"{'stage':<30} {'held-out accuracy':>22} {'9-10 digits':>12} {'change':>14} {'exceeds noise':>16} "
            f"{'tokens':>11} {'cost':>8} {'wall s':>7}")
    lines = [head, "-" * len(head)]
    for row in rows.values():
        accs = [accuracy(r) for r in row.evals]
        longs = [100 * long_accuracy(r) for r in row.evals]
        if len(accs) == 1:
            a, ci = accs[0]
            shown = f"{100 * a:.1f}% [{100 * ci[0]:.1f}-{100 * ci[1]:.1f}]"
            long_shown = f"{longs[0]:.1f}%"
        else:
            values = [100 * a for a, _ in accs]
            mean, sd = mean_sd(values)
            shown = f"{mean:.1f} ± {sd:.1f}% [{min(values):.0f}-{max(values):.0f}]"
            long_shown = "{:.1f} ± {:.1f}%".format(*mean_sd(longs))
        base = rows.get(row.baseline or "")
        diff, noise = change(base.evals, row.evals) if base is not None else ("", "")
        if base is not None and row.baseline != list(rows)[list(rows).index(row.stage) - 1]:
            diff = f"{diff} vs {row.baseline.split()[0]}"
        lines.append(f"{row.stage:<30} {shown:>22} {long_shown:>12} {diff:>14} {noise:>16} {row.tokens:>11,} "
                     f"${row.cost:>7.4f} {row.seconds:>7.1f}")
    return "\n".join(lines)


def leak_note(demo: Demo) -> str:
    """How a model trained on the target domain's filtered rows with the leaked benchmark copies still in
    them (no decontamination, no dedup) scores on those items against the rest: the inflated score that
    decontamination prevents."""
    import pyarrow.parquet as pq

    from demo.toytask import TASK

    leaked = {r["question"] for r in map(json.loads, demo.files[TASK].open()) if r["id"].startswith("leak-")}
    results = item_results(demo.leaky_eval)
    hit = [ok for q, ok in results if q in leaked]
    rest = [ok for q, ok in results if q not in leaked]
    if not hit or not rest:
        return "no held-out item leaked into the raw data"
    overall = 100 * sum(ok for _, ok in results) / len(results)
    clean = 100 * sum(rest) / len(rest)
    curated = pq.read_table(demo.out / "curated" / PRODUCT, columns=["question"]).column("question")
    left = len(leaked & set(curated.to_pylist()))
    return (f"contamination: trained on the target domain's filtered rows with the benchmark copies left in (no "
            f"decontamination or dedup; {demo.s.leak_steps} steps, seed 0), a model scores "
            f"{100 * sum(hit) / len(hit):.1f}% on the {len(hit)} leaked items and "
            f"{clean:.1f}% on the other {len(rest)}, so its benchmark score of {overall:.1f}% is inflated by "
            f"{overall - clean:+.1f} points; after curation {left} leaked items are left in the data")


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
    notes = [*demo.notes, leak_note(demo),
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
