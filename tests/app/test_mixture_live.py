"""Mixture lab, live sweep: proxies as they finish (newest first) and the quick fit's rank correlation growing
with them, read from the plan directory's results.parquet, progress.json and fit_curve.json."""

from __future__ import annotations

import json
import os
import shutil

import pyarrow as pa
from apptest import no_exception, open_page

from workbench.io import write_table


def test_sweep_reads_finished_proxies_newest_first_and_the_curve(tmp_path):
    from app import mixture

    plan = tmp_path / "mix-plan"
    plan.mkdir()
    write_table(pa.table({"run_id": [f"run-{i:04d}" for i in range(5)], "w.a": [0.5] * 5, "w.b": [0.5] * 5}),
                plan / "mixtures.parquet")
    write_table(pa.table({"run_id": ["run-0000", "run-0001", "run-0002"], "status": ["ok", "failed", "ok"],
                          "finished_at": [10.0, 30.0, 20.0]}), plan / "results.parquet")
    (plan / "progress.json").write_text(json.dumps({"state": "running", "stage": "mix-run", "pid": os.getpid(),
                                                    "eta_seconds": 12.0}))
    (plan / "fit_curve.json").write_text(json.dumps({"points": [
        {"proxies": 8, "lightgbm": 0.41, "linear": 0.2}, {"proxies": 12, "lightgbm": 0.77, "linear": 0.3}]}))
    s = mixture.sweep(plan)
    assert (s["state"], s["finished"], s["planned"], s["failed"], s["rank_corr"]) == ("running", 3, 5, 1, 0.77)
    assert s["results"]["run_id"].to_list() == ["run-0001", "run-0002", "run-0000"]
    assert s["curve"].filter(s["curve"]["regressor"] == "lightgbm")["spearman"].to_list() == [0.41, 0.77]
    (plan / "fit_curve.json").unlink()
    (plan / "progress.json").unlink()
    s = mixture.sweep(plan)
    assert s["state"] is None and s["curve"].height == 0 and s["rank_corr"] is None


def test_mixture_lab_shows_the_sweep_and_its_curve(mix_workspace, tmp_path, monkeypatch):
    root = tmp_path / "ws"
    shutil.copytree(mix_workspace / "mix-plan", root / "mix-plan")
    (root / "mix-plan" / "fit_curve.json").write_text(json.dumps({"points": [
        {"proxies": 8, "lightgbm": 0.5, "linear": 0.1}, {"proxies": 12, "lightgbm": 0.875, "linear": 0.2}]}))
    at = open_page("mixture", root, monkeypatch, plan="mix-plan")
    no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["proxies finished"] == "4 / 4" and metrics["sweep"] == "complete"
    assert metrics["quick-fit LightGBM rank corr."] == "+0.875"
    assert len(at.dataframe) == 1 and at.dataframe[0].value.shape[0] == 4
