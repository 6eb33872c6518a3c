"""The demo's stages: its sizes (`Settings`), each `wb` command it runs in-process, and `Demo`, which runs
the shared stages (data, curation, mixture search, teacher, distillation) once and the student stages per
seed, recording each stage's eval runs, tokens, cost and wall time in a `Row` of the result table.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.rundir import read_manifest
from workbench.runfiles import MANIFEST, MIXTURE, PRODUCT, RESULTS, read_json

# example prices, USD per million tokens: an API teacher's prompt / completion tokens, and trained tokens
PRICES = {"prefill": 0.50, "sampled": 2.00, "trained": 1.00}


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
