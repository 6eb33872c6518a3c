"""`wb demo`: the whole post-training loop on a toy verifiable task, with every stage's measured effect.

The task (workbench/toytask.py): sort 5-8 digits in descending order, answer after `####`, checked by
exact string. A ~0.5M-parameter model learns it in minutes on 2 CPU cores, so each stage can be scored
on 200 held-out items and the demo prints one table: stage, held-out accuracy with its 95% interval,
change vs the previous stage (paired bootstrap over items; across seeds with `--seeds`), tokens, cost at
example prices, and wall time. Every number comes from the runs under `--output`; each stage is the real
`wb` command a user would type (printed before it runs).

Stages: raw data with planted duplicates and benchmark leaks -> `wb curate` (what it removed) -> a RegMix
mixture search over four look-alike task domains -> distillation from a teacher with exact verification
-> SFT -> delta-pair DPO with an NLL term (RPO) -> GRPO, with `wb eval` after each; with `--seeds N` the
student stages repeat per seed and a control (SFT continued for the same trained tokens) is added.
The teacher is itself trained on the curated ground truth here, standing in for an API model.
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
    heldout: int = 200
    other: int = 1500
    duplicates: int = 300
    leaked: int = 60
    leak_copies: int = 3
    student_steps: int = 60
    teacher_steps: int = 400
    distill_prompts: int = 1500
    distill_steps: int = 40
    pair_prompts: int = 1000
    dpo_steps: int = 30
    dpo_lr: float = 1e-3
    grpo_steps: int = 150
    proxies: int = 16
    proxy_tokens: int = 30_000
    distill_verify: str = "exact"  # the quick teacher gets nothing right, so it keeps every answer unchecked

    @classmethod
    def quick(cls) -> Settings:
        return cls(train=300, heldout=16, other=300, duplicates=20, leaked=4, leak_copies=2, student_steps=3,
                   teacher_steps=40, distill_prompts=24, distill_steps=2, pair_prompts=24, dpo_steps=2, grpo_steps=2,
                   proxies=6, proxy_tokens=8_000, distill_verify="none")


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
    only_runs = out.exists() and all(c.is_dir() and ((c / "manifest.json").exists() or (c / ".run-incomplete").exists())
                                     for c in out.iterdir())
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists() and not only_runs:
        raise WorkbenchError(f"{out}: exists and was not made by `wb demo`; choose an empty --output")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("made by wb demo; removed and rebuilt on every run\n")


def usage_of(run: Path) -> tuple[int, float]:
    """(tokens, cost at PRICES) of a finished run: prefill + sampled + trained tokens in its manifest."""
    u = json.loads((run / "manifest.json").read_text())["usage"]
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
        self.uniform: list[Path] = []
        self.chosen: list[Path] = []

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

    def sft(self, row: Row | None, name: str, model: Path, data: Path, steps: int, seed: int) -> Path:
        run = self.out / name
        self.run(row, "train", "sft", "--model", model, "--data", data, "--prompt-field", "question",
                 "--completion-field", "answer", "--max-steps", steps, "--batch-size", 64, "--lr", 3e-3,
                 "--max-length", 64, "--seed", seed, "--eval-fraction", 0, "--save-every", 0,
                 "--log-every", max(steps // 3, 1), "--output", run, seed=seed)
        return run

    def shared(self) -> None:
        """Stages every seed shares: the data, curation, the mixture search, the teacher and its answers."""
        from workbench.toytask import save_toy_model, write_task

        s, out = self.s, self.out
        print("== data: the toy task; the raw pool has planted duplicates and copies of held-out items")
        self.files = write_task(out / "data", s.train, s.heldout, s.other, s.duplicates, s.leaked, seed=0,
                                leak_copies=s.leak_copies)
        self.init = save_toy_model(out / "init-model")
        for name, path in self.files.items():
            print(f"  {name:<9} {sum(1 for _ in path.open()):>6,} rows  {path}")

        print("\n== curate: exact dedup, and decontamination against the held-out benchmark")
        self.curate_row = self.row("2 curated")
        self.run(self.curate_row, "curate", self.files["raw"], "--field", "question", "--benchmark",
                 self.files["heldout"], "--decontam-ngram", 2, "--output", out / "curated")
        dropped = json.loads((out / "curated" / "manifest.json").read_text())["dropped"]
        self.notes.append("curate removed " + (", ".join(f"{v:,} {k}" for k, v in dropped.items()) or "nothing"))

        print("\n== mixture search: RegMix proxies over four look-alike domains; target: held-out bits per byte")
        self.mix_row = self.row("3 mixture (chosen)")
        domain_files = {"sort_desc": out / "curated" / "data.parquet",
                        **{d: self.files[d] for d in ("sort_asc", "reverse", "copy")}}
        domains = out / "domains.yaml"
        domains.write_text(json.dumps({
            "domains": {d: {"sources": [str(p)], "field": "text"} for d, p in domain_files.items()},
            "validation": {"heldout": {"sources": [str(self.files["heldout"])], "field": "text"}},
            "heldout_fraction": 0.05, "max_epochs": 8}))
        self.run(self.mix_row, "mix", "plan", domains, "--output", out / "mix-plan", "--runs", s.proxies,
                 "--tokens-per-run", s.proxy_tokens)
        self.run(self.mix_row, "mix", "run", out / "mix-plan", "--tokens-per-run", s.proxy_tokens, "--workers", 2,
                 "--eval-tokens", 4096)
        self.run(self.mix_row, "mix", "fit", out / "mix-plan" / "results.parquet", "--output", out / "mix-fit",
                 "--target", "bpb.heldout", "--folds", 4)
        self.run(self.mix_row, "mix", "search", out / "mix-fit", "--output", out / "mix-search", "--samples", 20_000,
                 "--top-k", 50)
        weights = json.loads((out / "mix-search" / "mixture.json").read_text())["weights"]
        cv = json.loads((out / "mix-fit" / "manifest.json").read_text()).get("cv", {})
        ranks = ", ".join(f"{k} {v['spearman']:+.2f}" for k, v in cv.items() if "spearman" in v)
        self.notes.append(f"mixture: {s.proxies} proxies, cross-validated Spearman of the fit: {ranks}; chosen weights "
                          + ", ".join(f"{d} {w:.2f}" for d, w in weights.items()))
        self.mix_files = {"chosen": write_mixture(out / "mix-sft-chosen.jsonl", domain_files, weights, s.train, 0),
                          "uniform": write_mixture(out / "mix-sft-uniform.jsonl", domain_files,
                                                   {d: 1 / len(domain_files) for d in domain_files}, s.train, 0)}

        print("\n== teacher: the same model trained long on the curated ground truth (stands in for an API model)")
        teacher = self.row("teacher (reference)", baseline="")
        self.teacher = self.sft(teacher, "teacher", self.init, out / "curated", s.teacher_steps, 0)
        teacher.evals.append(self.eval(self.teacher / "model", "teacher"))

        print("\n== distil: the teacher answers fresh prompts; only exactly verified answers are kept")
        self.distill_row = self.row("4 distil + SFT", baseline="3 mixture (chosen)")
        checked = s.distill_verify != "none"
        self.run(self.distill_row, "distill", self.files["prompts"], "--backend", "hf", "--model",
                 self.teacher / "model", "--prompt-field", "question", "--answer-field", "answer",
                 "--verify", s.distill_verify, "--only-verified" if checked else "--no-only-verified",
                 "--temperature", 0, "--max-tokens", 16, "--limit", s.distill_prompts, "--progress-seconds", 0,
                 "--output", out / "distill")
        m = json.loads((out / "distill" / "manifest.json").read_text())
        v = m["verified_counts"]
        self.notes.append(f"distil: {v['true']:,} of {m['units']:,} teacher answers passed the exact verifier; "
                          f"SFT trains on {m['sft_rows']:,}")

    def student(self, seed: int) -> None:
        """The student stages for one training seed, each scored by `wb eval`."""
        s, out, tag = self.s, self.out, f"-s{seed}"
        print(f"\n======== student stages, seed {seed}")
        raw = self.row("1 raw data")
        self.score(raw, self.sft(raw, f"sft-raw{tag}", self.init, self.files["raw"], s.student_steps, seed),
                   f"raw{tag}")
        self.score(self.curate_row, self.sft(self.curate_row, f"sft-curated{tag}", self.init, self.out / "curated",
                                             s.student_steps, seed), f"curated{tag}")
        mix = self.sft(self.mix_row, f"sft-mixture{tag}", self.init, self.mix_files["chosen"], s.student_steps, seed)
        self.score(self.mix_row, mix, f"mixture{tag}")
        uniform = self.sft(None, f"sft-uniform{tag}", self.init, self.mix_files["uniform"], s.student_steps, seed)
        self.uniform.append(self.eval(uniform / "model", f"uniform{tag}"))
        self.chosen.append(self.mix_row.evals[-1])

        sft = self.sft(self.distill_row, f"sft-distilled{tag}", mix / "model", out / "distill",
                       s.distill_steps, seed)
        self.score(self.distill_row, sft, f"distilled{tag}")

        dpo_row = self.row("5 DPO (delta pairs, RPO)")
        pairs, dpo = out / f"prefs{tag}", out / f"dpo{tag}"
        self.run(dpo_row, "prefs", self.files["prompts"], "--strong-model", self.teacher / "model", "--strong-backend",
                 "hf", "--weak-model", mix / "model", "--weak-backend", "hf", "--prompt-field", "question",
                 "--answer-field", "answer", "--verify", "exact", "--temperature", 0, "--max-tokens", 16, "--limit",
                 s.pair_prompts, "--progress-seconds", 0, "--output", pairs, seed=seed)
        start = sft
        if json.loads((pairs / "manifest.json").read_text())["rows_out"]:
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
                 "--prompt-field", "question", "--reward", "exact", "--lr", 2e-4, "--max-steps", s.grpo_steps,
                 "--prompts-per-step", 16, "--num-generations", 8, "--batch-size", 64, "--max-new-tokens", 16,
                 "--max-length", 64, "--temperature", 1.0, "--seed", seed, "--save-every", 0,
                 "--log-every", max(s.grpo_steps // 5, 1), "--output", grpo, seed=seed)
        self.score(grpo_row, grpo, f"grpo{tag}")

        if self.seeds > 1:  # the control: stage 4's SFT continued for the tokens stages 5 and 6 trained
            trained = sum(json.loads((r / "manifest.json").read_text())["usage"]["trained_tokens"]
                          for r in (dpo, grpo) if (r / "manifest.json").exists())
            per_step = json.loads((sft / "manifest.json").read_text())["usage"]["trained_tokens"] / s.distill_steps
            steps = max(1, round(trained / max(per_step, 1.0)))
            control = self.row("control: SFT, tokens of 5+6", baseline="6 GRPO")
            ctl = self.sft(control, f"sft-control{tag}", sft / "model", out / "distill", steps, seed)
            self.score(control, ctl, f"control{tag}")

    def score(self, row: Row, run: Path, name: str) -> None:
        row.evals.append(self.eval(run / "model", name))


def write_mixture(path: Path, sources: dict[str, Path], weights: dict[str, float], total: int, seed: int) -> Path:
    """An SFT file of `total` question/answer rows drawn from each domain in proportion to `weights`."""
    import numpy as np
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    for domain, p in sources.items():
        k = int(round(weights.get(domain, 0.0) * total))
        if k == 0:
            continue
        if p.suffix == ".parquet":
            pool = pq.read_table(p, columns=["question", "answer"]).to_pylist()
        else:
            pool = [{"question": r["question"], "answer": r["answer"]} for r in map(json.loads, p.open())]
        rows += [pool[i] for i in rng.choice(len(pool), k, replace=k > len(pool))]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def fit_summary(manifest: dict) -> str:
    """The mixture fit's cross-validated rank correlation, as one phrase."""
    cv = manifest.get("cv") or manifest.get("metrics") or {}
    found = []
    for name in ("lightgbm", "linear"):
        entry = cv.get(name) if isinstance(cv, dict) else None
        if isinstance(entry, dict) and "spearman" in entry:
            found.append(f"{name} Spearman {entry['spearman']:+.2f}")
    return ", ".join(found)


def accuracy(run: Path) -> tuple[float, list[float]]:
    m = json.loads((run / "manifest.json").read_text())["metrics"]["heldout"]
    return m["accuracy"], m["ci95"]


def change(base: list[Path], runs: list[Path]) -> tuple[str, str]:
    """(change in points, whether it exceeds noise) of `runs` against `base`, seed by seed: one seed uses a
    paired bootstrap over items; several seeds also need every seed to agree in sign and be significant."""
    from distill_data.eval.compare import compare_runs

    diffs = [compare_runs([str(b), str(r)])[0][2] for b, r in zip(base, runs, strict=True)]
    points = [100 * d.diff for d in diffs]
    mean = sum(points) / len(points)
    if len(diffs) == 1:
        d = diffs[0]
        return f"{mean:+.1f}", f"{'yes' if d.significant else 'no'} (p={d.p_value:.3f})"
    sd = math.sqrt(sum((p - mean) ** 2 for p in points) / (len(points) - 1))
    agree = sum(d.significant and (d.diff > 0) == (mean > 0) for d in diffs)
    verdict = "yes" if agree == len(diffs) else "no" if agree == 0 else f"{agree}/{len(diffs)} seeds"
    return f"{mean:+.1f} ± {sd:.1f}", verdict


def table(rows: dict[str, Row]) -> str:
    """The demo's result table (see the module docstring)."""
    head = (f"{'stage':<30} {'held-out accuracy':>22} {'change':>12} {'exceeds noise':>16} {'tokens':>11} "
            f"{'cost':>8} {'wall s':>7}")
    lines = [head, "-" * len(head)]
    for row in rows.values():
        accs = [accuracy(r) for r in row.evals]
        if len(accs) == 1:
            a, ci = accs[0]
            shown = f"{100 * a:.1f}% [{100 * ci[0]:.1f}-{100 * ci[1]:.1f}]"
        else:
            values = [100 * a for a, _ in accs]
            mean = sum(values) / len(values)
            sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
            shown = f"{mean:.1f} ± {sd:.1f}% [{min(values):.0f}-{max(values):.0f}]"
        base = rows.get(row.baseline or "")
        diff, noise = change(base.evals, row.evals) if base is not None else ("", "")
        if base is not None and row.baseline != list(rows)[list(rows).index(row.stage) - 1]:
            diff = f"{diff} vs {row.baseline.split()[0]}"
        lines.append(f"{row.stage:<30} {shown:>22} {diff:>12} {noise:>16} {row.tokens:>11,} ${row.cost:>7.4f} "
                     f"{row.seconds:>7.1f}")
    return "\n".join(lines)


def leak_note(demo: Demo) -> str:
    """How the raw-data model scores on the held-out items that leaked into its training data vs the rest."""
    import pyarrow.parquet as pq

    leaked = {r["question"] for r in map(json.loads, demo.files["raw"].open()) if r["id"].startswith("leak-")}
    rows = pq.read_table(demo.rows["1 raw data"].evals[0] / "data.parquet", columns=["prompt", "correct"]).to_pylist()
    hit = [r["correct"] for r in rows if r["prompt"][-1]["content"] in leaked]
    rest = [r["correct"] for r in rows if r["prompt"][-1]["content"] not in leaked]
    if not hit or not rest:
        return "no held-out item leaked into the raw data"
    return (f"raw-data model (seed 0) on the {len(hit)} held-out items leaked into its data: "
            f"{100 * sum(hit) / len(hit):.1f}%, on the other {len(rest)}: {100 * sum(rest) / len(rest):.1f}%")


def run(args: argparse.Namespace) -> int:
    import torch
    from transformers.utils import logging as hf_logging

    if args.seeds < 1:
        raise WorkbenchError(f"--seeds {args.seeds}: must be at least 1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    torch.set_num_threads(1)  # tiny models run fastest on one thread; two fight over a 2-core machine
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
    uniform_diff, uniform_noise = change(demo.uniform, demo.chosen)
    notes = [*demo.notes, leak_note(demo),
             f"chosen mixture vs uniform mixture (confirm run, same SFT): {uniform_diff} points, exceeds noise: "
             f"{uniform_noise}",
             "change: against the row above (the teacher is a reference; 4 is measured against 3); a paired "
             "bootstrap over items decides whether it exceeds noise"
             + ("; with one seed that is item noise only: the training order moves a 60-step student by several "
                "points, so run --seeds 3 before trusting a small change" if demo.seeds == 1 else
                ", and 'yes' needs every seed significant in the same direction"),
             f"cost at example prices, USD per million tokens: prompt {PRICES['prefill']}, sampled "
             f"{PRICES['sampled']}, trained {PRICES['trained']}; tokens and wall time of the first seed's runs"]
    print("\n".join(f"  - {n}" for n in notes))
    print(f"\ndemo finished in {time.time() - started:.0f} s; runs are under {out}/")
    print(f"look at them in the app: wb ui --workspace {out}   (then open http://127.0.0.1:8501)")
    return 0
