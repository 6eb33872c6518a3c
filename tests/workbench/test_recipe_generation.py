"""Recipes over generation: the plan's ranges hold the measured ledger; the cost cap stops a distill step,
which continues when the cap is raised; a SIGKILLed recipe takes its step down and resumes on re-run. The
teacher is the scripted mock server on loopback (tests/mock_server.py: prompt tokens are words, each sample
5 tokens), so costs are exact: at $2,000 per million completion tokens each request costs $0.01."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.errors import CostCapReached
from workbench.recipe import load_recipe
from workbench.recipe_plan import plan, total
from workbench.recipe_run import run, status
from workbench.runfiles import JOB, pid_alive, read_json, read_progress

PROMPTS = 40


@pytest.fixture(scope="module")
def slow_mock():
    """A mock teacher that takes 0.1 s a request, so a one-at-a-time distill lasts a few seconds."""
    from tests.mock_server import MockServer

    server = MockServer(latency=0.1).start()
    yield server
    server.stop()


def recipe_file(tmp_path: Path, url: str, extra: str = "", steps: str = "", concurrency: int = 1) -> Path:
    with open(tmp_path / "q.jsonl", "w") as f:
        f.writelines(json.dumps({"id": f"q{i}", "question": f"sort {10007 * i % 99991}"}) + "\n"
                     for i in range(PROMPTS))
    path = tmp_path / "gen.yaml"
    path.write_text(f"""
name: gen
workspace: {tmp_path / 'ws'}
prices: {{price_in: 0.0, price_out: 2000.0}}
endpoints: {{teacher: {url}}}
{extra}
steps:
  answers:
    command: distill
    inputs: [{tmp_path / 'q.jsonl'}]
    options: {{model: m, base_url: {{endpoint: teacher}}, prompt_field: question, max_tokens: 16,
              max_concurrency: {concurrency}, progress_seconds: 0, temperature: 0}}
{steps}""")
    return path


def ledger_units(run_dir: str) -> int:
    with sqlite3.connect(Path(run_dir) / "ledger.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM units WHERE status = 'ok'").fetchone()[0]


def test_plan_ranges_hold_the_measured_ledger_and_earlier_runs_narrow_the_next_plan(tmp_path, mock):
    again = """  again:
    command: distill
    inputs: [{from: answers}]
    options: {model: m, base_url: {endpoint: teacher}, n: 2, max_tokens: 16,
              progress_seconds: 0, temperature: 0.5}
"""
    path = recipe_file(tmp_path, mock.url, steps=again, concurrency=8)
    before = {e.step: e for e in plan(load_recipe(path))}
    e = before["answers"]
    assert e.state == "to run" and e.requests == (PROMPTS, PROMPTS) and e.sampled_tokens == (PROMPTS, PROMPTS * 16)
    assert before["again"].rows == (0, PROMPTS)  # the planned output of `answers`, which has not run
    statuses = {s.name: s for s in run(load_recipe(path), echo=False, until="answers")}
    assert statuses["again"].state == "to run"
    usage = json.loads((Path(statuses["answers"].run_dir) / "manifest.json").read_text())["usage"]
    assert usage["requests"] == PROMPTS and usage["sampled_tokens"] == 5 * PROMPTS
    for key in ("requests", "prefill_tokens", "sampled_tokens"):
        low, high = getattr(e, key)
        assert low <= usage[key] <= high, (key, low, usage[key], high)
    low, high = e.cost_usd
    assert usage["cost_usd"] == pytest.approx(0.01 * PROMPTS) and low <= usage["cost_usd"] <= high
    # the second step now plans from the first's ledger: 5 tokens a sample, within 0.5x-2x
    (tmp_path / "gen.yaml").write_text(path.read_text().replace("temperature: 0.5", "temperature: 0.7"))
    after = {e.step: e for e in plan(load_recipe(path))}
    assert after["answers"].state == "measured" and after["answers"].requests == (PROMPTS, PROMPTS)
    assert after["again"].sampled_tokens == (PROMPTS * 2 * 2.5, PROMPTS * 2 * 10)
    assert "completions average 5.0 tokens" in " ".join(after["again"].basis)
    assert total(list(after.values())).requests[0] == PROMPTS + PROMPTS


def test_the_cap_stops_distill_a_sigkill_leaves_it_resumable_and_raising_the_cap_finishes_it(tmp_path, slow_mock):
    path = recipe_file(tmp_path, slow_mock.url, extra="max_cost: 0.03")
    with pytest.raises(CostCapReached, match="raise --max-cost"):
        run(load_recipe(path), echo=False)
    (step,) = status(load_recipe(path))
    assert step.state == "to run" and "cost cap" in step.why
    capped = ledger_units(step.run_dir)
    assert 3 <= capped < PROMPTS and step.cost_usd >= 0.03

    # raise the cap and run the recipe as a user would; SIGKILL it while its step generates
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "recipe", "run", str(path), "--max-cost", "5",
                             "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and ((read_progress(step.run_dir) or {}).get("done") or 0) < capped + 3:
        assert proc.poll() is None, "the recipe ended before it could be killed"
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    child = read_json(Path(step.run_dir) / JOB)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and pid_alive(child["pid"], child["process"]):
        time.sleep(0.1)
    assert not pid_alive(child["pid"], child["process"])  # the step died with its recipe
    (step,) = status(load_recipe(path))
    assert step.state == "to run" and step.why.startswith("resumes the interrupted run")
    killed = ledger_units(step.run_dir)
    assert capped < killed < PROMPTS

    (done,) = run(load_recipe(path), max_cost=5, echo=False)
    assert done.state == "done" and done.run_dir == step.run_dir and ledger_units(done.run_dir) == PROMPTS
    sent = sum(n for text, n in slow_mock.counts.items() if text.startswith("sort "))
    assert sent <= PROMPTS + 2  # only units in flight when the cap and the kill struck were asked twice
    assert json.loads((Path(done.run_dir) / "manifest.json").read_text())["rows_out"] == PROMPTS


def test_start_runs_the_recipe_in_the_background_and_stop_takes_its_step_down(tmp_path, slow_mock):
    from workbench.recipe_run import read_record, recipe_running, start, stop

    recipe = load_recipe(recipe_file(tmp_path, slow_mock.url))
    pid = start(recipe)
    assert recipe_running(recipe.workspace) == pid  # at once, before the runner has written its record
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and ((status(recipe)[0].usage or {}).get("requests") or 0) < 2:
        time.sleep(0.1)
    step_dir = Path(status(recipe)[0].run_dir)
    child = read_json(step_dir / JOB)
    assert stop(recipe.workspace) == f"stopped recipe pid {pid}"
    assert recipe_running(recipe.workspace) is None and read_record(recipe.workspace)["state"] == "interrupted"
    assert not pid_alive(child["pid"], child["process"])
    (step,) = status(recipe)
    assert step.state == "to run" and step.why.startswith("resumes the interrupted run")
    assert "interrupted" in (recipe.workspace / "recipe.log").read_text()
