"""`wb demo`: every stage runs and its table shows the eval runs' numbers; it never deletes what it did not make."""

from __future__ import annotations

import json

import pytest

from demo.report import mean_sd
from workbench.cli import main


def test_mean_sd_is_the_sample_spread():
    assert mean_sd([1.0]) == (1.0, 0.0)
    mean, sd = mean_sd([2.0, 4.0, 6.0])
    assert mean == 4.0 and sd == pytest.approx(2.0)


@pytest.mark.slow
def test_demo_runs_every_stage_and_prints_the_table(tmp_path, capsys):
    """The quick demo exercises the plumbing (its numbers mean nothing); every table row is a real eval run."""
    assert main(["demo", "--output", str(tmp_path), "--quick"]) == 0
    out = capsys.readouterr().out
    for command in ("curate", "mix run", "train sft", "distill", "prefs", "train dpo", "train grpo", "eval"):
        assert f"$ wb {command}" in out
    assert "Traceback" not in out and "demo finished" in out and "wb ui --workspace" in out
    stages = {p.parent.name: json.loads(p.read_text()) for p in tmp_path.glob("*/manifest.json")}
    curated = stages["curated"]
    # four domains of 300 rows + 20 duplicates + 10 endless answers + 10 refusals, + 4 leaked items x 2
    assert curated["rows_in"] == 4 * 340 + 8 and curated["rows_out"] == 1200
    assert curated["dropped"] == {"exact_duplicate": 80, "degenerate_repetition:ngram_loop": 40,
                                  "refusal:refuses": 40, "contaminated:heldout": 8}
    table = out[out.index("== results"):]
    evals = {"1 raw data": "raw", "2 curated": "curated", "3 mixture (chosen)": "mixture",
             "4 distil + SFT": "distilled", "6 GRPO": "grpo"}
    for stage, name in evals.items():
        line = next(x for x in table.splitlines() if x.startswith(stage))
        acc = stages[f"eval-{name}-s0"]["metrics"]["heldout"]["accuracy"]
        assert f"{100 * acc:.1f}%" in line  # the table shows the eval run's number
    assert stages["distill"]["units"] == 24 and stages["eval-raw-s0"]["metrics"]["heldout"]["items"] == 16


def test_demo_never_deletes_a_folder_it_did_not_make(tmp_path, capsys):
    (tmp_path / "thesis.tex").write_text("precious")
    assert main(["demo", "--output", str(tmp_path)]) == 2
    assert "was not made by `wb demo`" in capsys.readouterr().err
    assert (tmp_path / "thesis.tex").read_text() == "precious"
