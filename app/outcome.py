"""What a job's panel says once it ends: one summary line from the run's own files ("495 -> 403 kept", or
why it failed), the pages that show it, the actions its state allows (Resume, Retry failed units) and the
next steps that prefill the New job form ("Distil from these prompts", "Train on this"). No streamlit here;
`app.ui.job_panel` renders it."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from workbench.errors import InputError
from workbench.runfiles import MANIFEST, PRODUCT, SHARDS, RunState, read_json

LEDGER = "ledger.sqlite"  # the generation runs' resume ledger (`llm.ledger`): failed units retry on a re-run
GENERATION_STAGES = ("distill", "prefs", "eval")
DATA_STAGES = ("curate", "dedup", "decontam", "semdedup", "select", "convert", "mix-build")


@dataclass
class NextStep:
    """A button that opens the New job form for `command` with `values` filled in."""

    label: str
    command: str
    values: dict = field(default_factory=dict)


def one_line(text: str | None, limit: int = 300) -> str:
    """The first non-empty line of `text`, cut to `limit` characters."""
    line = next((ln.strip() for ln in (text or "").splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def summary(run_dir: Path, state: RunState) -> str | None:
    """The one line a finished run's panel leads with: rows in -> kept (with the largest drop reasons),
    failed units of a generation run, or the reason a failed or interrupted run stopped."""
    if state.state in ("failed", "interrupted", "unreadable"):
        return f"{state.state}: {one_line(state.error) or 'no reason recorded (see the log)'}"
    if state.state != "complete":
        return None
    try:
        manifest = read_json(Path(run_dir) / MANIFEST) or {}
    except InputError as exc:
        return str(exc)
    rows_in, rows_out = manifest.get("rows_in"), manifest.get("rows_out")
    parts = []
    if isinstance(rows_in, int) and isinstance(rows_out, int) and state.stage in GENERATION_STAGES:
        parts.append(f"{rows_in:,} prompts -> {rows_out:,} rows")
    elif isinstance(rows_in, int) and isinstance(rows_out, int):
        parts.append(f"{rows_in:,} -> {rows_out:,} kept")
    elif isinstance(rows_out, int):
        parts.append(f"{rows_out:,} rows written")
    dropped = manifest.get("dropped") or {}
    if isinstance(dropped, dict) and dropped:
        top = sorted(((k, v) for k, v in dropped.items() if isinstance(v, int) and v), key=lambda kv: -kv[1])[:3]
        if top:
            parts.append("dropped: " + ", ".join(f"{k} {v:,}" for k, v in top))
    failed = failed_units(run_dir)
    if failed:
        parts.append(f"{failed:,} failed units (Retry failed units sends them again)")
    return " · ".join(parts) or "complete"


def failed_units(run_dir: Path) -> int:
    """Failed units in the run's ledger (0 when it keeps none): what a re-run of the command retries."""
    path = Path(run_dir) / LEDGER
    if not path.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
        try:
            (n,) = con.execute("SELECT COUNT(*) FROM units WHERE status = 'failed'").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return 0
    return int(n or 0)


def actions(run_dir: Path, state: RunState, has_command: bool) -> list[str]:
    """Which of "resume", "retry" and "clone" the panel offers: resume an interrupted or failed run, retry the
    failed units of a finished one that kept a ledger, clone any run whose command is recorded."""
    if not has_command or state.state == "running":
        return []
    out = []
    if state.state in ("interrupted", "failed"):
        out.append("resume")
    if state.state in ("complete", "failed") and failed_units(run_dir):
        out.append("retry")
    return [*out, "clone"]


def has_data(run_dir: Path) -> bool:
    return (Path(run_dir) / PRODUCT).exists() or (Path(run_dir) / SHARDS).is_dir()


def pages(stage: str | None, run_dir: Path) -> list[tuple[str, str]]:
    """(page file under app/views, label) of the pages that show this run."""
    stage = stage or ""
    out = []
    if has_data(run_dir):
        out.append(("browse.py", "Browse its rows"))
    if stage in ("curate", "dedup", "decontam"):
        out.append(("report.py", "Curation report"))
    if stage in ("dedup", "decontam", "curate"):
        out.append(("dedup.py", "Dedup & decontamination"))
    if stage in GENERATION_STAGES:
        out.append(("generation.py", "Generation monitor"))
    if stage == "prefs":
        out.append(("pairs.py", "Pairs"))
    if stage.startswith("train"):
        out.append(("training.py", "Training curves"))
    return out


def next_steps(stage: str | None, name: str, run_dir: Path) -> list[NextStep]:
    """What usually follows a complete run of `stage`, as New job forms prefilled with this run."""
    stage = stage or ""
    if stage in DATA_STAGES:
        return [NextStep("Distil from these prompts", "distill", {"prompts": name}),
                NextStep("Train on this (SFT)", "train sft", {"data": name})]
    if stage == "distill":
        return [NextStep("Train on this (SFT)", "train sft", {"data": name}),
                NextStep("Preference pairs from these prompts", "prefs", {"prompts": name})]
    if stage == "prefs":
        return [NextStep("Train on these pairs (DPO)", "train dpo", {"data": name})]
    if stage.startswith("train") and (Path(run_dir) / "model").is_dir():
        return [NextStep("Evaluate this model", "eval", {"model": f"{name}/model", "backend": "hf"})]
    return []
