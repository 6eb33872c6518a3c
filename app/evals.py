"""The eval page's readers: `wb eval` runs of the workspace as a benchmarks-by-stage table, one run's
per-item results (the prompt, the model's answer, the reference, the verifier's verdict), and the paired
comparison of two runs, which is `wb eval --compare` itself run as a subprocess (the app imports only the
kernel, so the bootstrap stays in `evals/` and is never copied here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl

from app.runs import list_runs
from app.workspace import safe_path
from workbench.errors import InputError
from workbench.runfiles import MANIFEST, PRODUCT, read_json

VERDICTS = ("all", "correct", "wrong", "failed or truncated")
COMPARE_SECONDS = 300  # one `wb eval --compare` reads two products; a minute is already a large run


def eval_runs(root: Path) -> list[str]:
    """Names of the workspace's finished `wb eval` runs, oldest first (the order the stages ran in)."""
    rows = [r for r in list_runs(root) if r["stage"] == "eval" and r["state"] == "complete"]

    def order(r: dict) -> tuple:  # start times are whole seconds: two quick runs tie, their manifests do not
        manifest = Path(root) / r["name"] / MANIFEST
        return r["started_at"] or "", manifest.stat().st_mtime_ns if manifest.exists() else 0, r["name"]

    return [r["name"] for r in sorted(rows, key=order)]


def _manifest(root: Path, name: str) -> dict:
    manifest = read_json(Path(root) / name / MANIFEST)
    if manifest is None:
        raise InputError(f"{name}: has no {MANIFEST}")
    return manifest


def model_label(manifest: dict) -> str:
    """The model a run scored, short: a trained run's model directory shows as its run (`sft/model` -> `sft`)."""
    model = str((manifest.get("config") or {}).get("model") or manifest.get("model") or "?")
    path = Path(model)
    return path.parent.name if path.name == "model" and path.parent.name else path.name or model


def benchmark_table(root: Path, names: list[str]) -> pl.DataFrame:
    """One row per (run, benchmark): accuracy and its 95% interval, pass@k and maj@k, items x samples,
    truncation, failed samples. Runs keep the order of `names`; `stage` is each run's position."""
    rows = []
    for stage, name in enumerate(names):
        manifest = _manifest(root, name)
        for bench, m in (manifest.get("metrics") or {}).items():
            lo, hi = (m.get("ci95") or [None, None])[:2]
            extra = {k: m[k] for k in m if k.startswith(("pass@", "maj@")) and k != "pass@1"}
            rows.append({"stage": stage, "run": name, "model": model_label(manifest), "benchmark": bench,
                         "accuracy": m.get("accuracy"), "ci_low": lo, "ci_high": hi, "items": m.get("items"),
                         "samples": m.get("samples_per_item"),
                         "pass@k": next((v for k, v in extra.items() if k.startswith("pass@")), None),
                         "maj@k": next((v for k, v in extra.items() if k.startswith("maj@")), None),
                         "truncated": m.get("truncation_rate"), "failed": m.get("failed", 0)})
    schema = {"stage": pl.Int64, "run": pl.String, "model": pl.String, "benchmark": pl.String,
              "accuracy": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64, "items": pl.Int64,
              "samples": pl.Int64, "pass@k": pl.Float64, "maj@k": pl.Float64, "truncated": pl.Float64,
              "failed": pl.Int64}
    return pl.DataFrame(rows, schema=schema)


def item_results(run_dir: Path, benchmark: str | None = None, verdict: str = "all", limit: int = 500) -> pl.DataFrame:
    """Per-sample rows of an eval run (at most `limit`): item, sample, prompt, the model's answer, the answer
    the verifier extracted, the reference, the verdict and the verifier's or endpoint's detail."""
    path = Path(run_dir) / PRODUCT
    if not path.exists():
        raise InputError(f"{run_dir}: has no {PRODUCT}; is it a finished `wb eval` run?")
    if verdict not in VERDICTS:
        raise InputError(f"verdict {verdict!r}: expected one of {', '.join(VERDICTS)}")
    lf = pl.scan_parquet(path)
    cols = lf.collect_schema()
    missing = [c for c in ("benchmark", "item_id", "content", "correct", "status") if c not in cols]
    if missing:
        raise InputError(f"{path}: no column {missing[0]!r}; not a `wb eval` product")
    if benchmark:
        lf = lf.filter(pl.col("benchmark") == benchmark)
    lf = lf.filter({"all": pl.lit(True), "correct": pl.col("correct"), "wrong": ~pl.col("correct"),
                    "failed or truncated": pl.col("status") != "ok"}[verdict])
    prompt = pl.col("prompt")
    if isinstance(cols.get("prompt"), pl.List):  # the last user turn is the question
        prompt = prompt.list.last().struct.field("content")
    detail = pl.coalesce(pl.col("verify_detail") if "verify_detail" in cols else pl.lit(None, pl.String),
                         pl.col("error"))
    return lf.select(
        "benchmark", "item_id", "sample_index", prompt.cast(pl.String).alias("prompt"),
        pl.col("content").alias("model answer"), pl.col("extracted_answer").alias("extracted"),
        pl.col("answer").cast(pl.String).alias("reference"),
        pl.when(pl.col("correct")).then(pl.lit("correct")).otherwise(pl.lit("wrong")).alias("verdict"),
        "status", detail.alias("detail")).head(limit).collect()


def compare_argv(names: list[str]) -> list[str]:
    """The `wb eval --compare` command over runs of the workspace (the first is the baseline), run from the
    workspace so that the table names each run as the app does."""
    return ["wb", "eval", "--compare", *names]


def run_compare(root: Path, names: list[str]) -> str:
    """`wb eval --compare` over the runs: its table (per benchmark: items, both accuracies, the difference, its
    95% paired-bootstrap interval, p, whether it exceeds noise). `InputError` with its one-line message when
    the command refuses (e.g. runs that share no benchmark)."""
    if len(names) < 2:
        raise InputError("compare: choose at least two eval runs (the first is the baseline)")
    for name in names:
        safe_path(root, name)
    argv = [sys.executable, "-m", "workbench.cli", *compare_argv(names)[1:]]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=COMPARE_SECONDS, check=False, cwd=root)
    except subprocess.TimeoutExpired:
        raise InputError(f"wb eval --compare did not finish within {COMPARE_SECONDS} s") from None
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or [f"exit code {done.returncode}"]
        raise InputError(lines[-1])
    return done.stdout.strip()
