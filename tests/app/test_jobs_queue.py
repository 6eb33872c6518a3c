"""The app's job life cycle without a browser: only path fields are resolved against the workspace (a served
model name is sent as typed), a run's command comes back into the form (Clone), a finished panel's summary,
actions and next steps, and the job queue (limit, order, cancel, persisted across a restart)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time

import pytest

from app import forms, jobqueue, jobs, outcome
from workbench.errors import InputError
from workbench.runfiles import JOB, MANIFEST, PROGRESS, process_identity, run_state, write_atomic


def test_a_model_name_on_an_endpoint_is_not_rewritten_into_a_workspace_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "ws"
    (root / "teacher").mkdir(parents=True)
    (root / "cur").mkdir()
    fields = forms.command_fields("distill")
    typed = {**forms.default_values(fields), "prompts": "cur", "model": "teacher",
             "base_url": ["http://127.0.0.1:9/v1"], "judge_model": "teacher"}
    got = forms.resolve_inputs(fields, typed, root)
    assert (got["prompts"], got["model"], got["judge_model"]) == (str(root / "cur"), "teacher", "teacher")
    notes = forms.resolution_notes(fields, typed, got)
    assert notes == [f"`prompts` cur → `{root / 'cur'}` (found in the workspace)",
                     "`--model` teacher: a model name on the endpoint, sent as typed",
                     "`--judge-model` teacher: a model name on the endpoint, sent as typed"]
    # without an endpoint (or with an in-process backend) the model is a local directory: resolved
    local = forms.resolve_inputs(fields, {**typed, "base_url": []}, root)
    assert local["model"] == str(root / "teacher")
    judge = forms.resolve_inputs(fields, {**typed, "backend": "hf", "base_url": [],
                                          "judge_base_url": ["http://127.0.0.1:9/v1"]}, root)
    assert (judge["model"], judge["judge_model"]) == (str(root / "teacher"), "teacher")  # the judge has its URL
    # prefs: each role has its own endpoint; a field that never takes a path is never resolved
    fields = forms.command_fields("prefs")
    got = forms.resolve_inputs(fields, {"prompts": "cur", "strong_model": "teacher", "strong_base_url": ["http://x/v1"],
                                        "weak_model": "teacher", "prompt_field": "teacher"}, root)
    assert (got["strong_model"], got["weak_model"], got["prompt_field"]) == ("teacher", str(root / "teacher"), "teacher")
    opd = forms.command_fields("train opd")
    got = forms.resolve_inputs(opd, {"teacher_model": "teacher", "teacher": "teacher"}, root)
    assert (got["teacher_model"], got["teacher"]) == ("teacher", str(root / "teacher"))


def test_clone_reads_a_command_line_back_into_form_values(tmp_path):
    config = tmp_path / "job-config.yaml"
    config.write_text("max_cluster_size: 50\n")
    command, values = forms.values_from_argv(["dedup", "a.jsonl", "b.jsonl", "--threshold", "0.7", "--no-exact",
                                              "--output", str(tmp_path / "o"), "--config", str(config)])
    assert command == "dedup"
    assert (values["sources"], values["threshold"], values["exact"], values["max_cluster_size"]) == \
        (["a.jsonl", "b.jsonl"], 0.7, False, 50)
    assert "output" not in values  # a clone writes a new run
    command, values = forms.values_from_argv(["train", "sft", "--data", "cur", "--max-steps", "3", "--output", "o"])
    assert (command, values["data"], values["max_steps"]) == ("train sft", "cur", 3)
    fields = forms.command_fields(command)
    argv, _ = forms.build_command(command, fields, forms.default_values(fields) | values | {"output": "o2"})
    assert argv == ["train", "sft", "--data", "cur", "--output", "o2", "--max-steps", "3"]
    with pytest.raises(InputError, match="--threshold: invalid float value"):
        forms.values_from_argv(["dedup", "a.jsonl", "--threshold", "high"])
    with pytest.raises(InputError, match="not a command the app can launch"):
        forms.values_from_argv(["serve", "m"])


def _ledger(path, statuses: list[str]) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE units (key TEXT, prompt_id TEXT, sample_index INTEGER, status TEXT, reasoning TEXT, "
                "content TEXT, finish_reason TEXT, error TEXT, prompt_tokens INTEGER, completion_tokens INTEGER, "
                "attempts INTEGER, finished_at REAL)")
    con.executemany("INSERT INTO units VALUES ('k', ?, 0, ?, NULL, ?, NULL, ?, 3, 4, 1, ?)",
                    [(f"p{i}", s, "42" if s == "ok" else None,
                      "NotFoundError: 404 model 'teacher' does not exist on http://127.0.0.1:9/v1" if s == "failed" else None,
                      float(i)) for i, s in enumerate(statuses)])
    con.commit()
    con.close()


def test_the_finished_panel_says_what_was_kept_why_it_failed_and_what_comes_next(tmp_path):
    from app import generation

    cur = tmp_path / "cur"
    cur.mkdir()
    write_atomic(cur / MANIFEST, {"stage": "curate", "rows_in": 495, "rows_out": 403, "argv": ["wb", "curate", "x"],
                                  "dropped": {"too_short": 60, "exact_duplicate": 30, "pii": 2}})
    state = run_state(cur)
    assert outcome.summary(cur, state) == "495 -> 403 kept · dropped: too_short 60, exact_duplicate 30, pii 2"
    assert outcome.actions(cur, state, has_command=True) == ["clone"]
    assert [s.label for s in outcome.next_steps("curate", "cur", cur)] == ["Distil from these prompts",
                                                                          "Train on this (SFT)"]
    assert outcome.next_steps("curate", "cur", cur)[0].values == {"prompts": "cur"}
    dist = tmp_path / "dist"
    dist.mkdir()
    _ledger(dist / "ledger.sqlite", ["failed", "failed", "ok"])
    write_atomic(dist / PROGRESS, {"state": "failed", "stage": "distill", "error": "every unit failed (2 of 2; first "
                                   "error: NotFoundError: 404 ...); the run keeps them\nTraceback: more"})
    state = run_state(dist)
    assert outcome.summary(dist, state) == "failed: every unit failed (2 of 2; first error: NotFoundError: 404 ...); " \
                                           "the run keeps them"
    assert outcome.actions(dist, state, has_command=True) == ["resume", "retry", "clone"]
    assert outcome.actions(dist, state, has_command=False) == []
    # the generation monitor: samples while running (from the ledger), by status, with the whole error
    failed = generation.samples(dist, 10, 0, "failed")
    assert [r["id"] for r in failed] == ["p1", "p0"]  # newest first
    assert failed[0]["error"] == "NotFoundError: 404 model 'teacher' does not exist on http://127.0.0.1:9/v1"
    assert [r["content"] for r in generation.samples(dist, 10, 0, "ok")] == ["42"]
    # once retried and complete: what it produced, and the failed units a retry would send again
    write_atomic(dist / MANIFEST, {"stage": "distill", "rows_in": 3, "rows_out": 3, "argv": ["wb", "distill", "p"]})
    (dist / PROGRESS).unlink()
    state = run_state(dist)
    assert outcome.summary(dist, state) == "3 prompts -> 3 rows · 2 failed units (Retry failed units sends them again)"
    assert outcome.actions(dist, state, has_command=True) == ["retry", "clone"]
    assert [p for p, _ in outcome.pages("distill", dist)] == ["generation.py"]
    assert generation.error_messages(dist) == [
        {"count": 2, "error": "NotFoundError: 404 model 'teacher' does not exist on http://127.0.0.1:9/v1"}]


@pytest.fixture
def sleepers(monkeypatch):
    """`jobs.launch` replaced by one that starts `sleep` in the run directory (with the same launch record), so
    the queue's logic runs without `wb`; every process it started is stopped at the end."""
    started: list[subprocess.Popen] = []

    def fake_launch(argv, run_dir, cwd=None, resume=False):
        run_dir.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
        started.append(proc)
        write_atomic(run_dir / JOB, {"pid": proc.pid, "process": process_identity(proc.pid), "argv": argv,
                                     "returncode": None})
        return proc.pid

    monkeypatch.setattr(jobs, "launch", fake_launch)
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def test_the_queue_runs_at_most_the_limit_in_order_cancels_and_survives_a_restart(tmp_path, sleepers, monkeypatch):
    monkeypatch.setattr(jobqueue, "ensure_launcher", lambda root: False)  # this test pumps by hand
    root = tmp_path
    jobqueue.set_max_jobs(root, 1)
    a = jobqueue.enqueue(root, ["dedup", "x", "--output", str(root / "a")], root / "a")
    b = jobqueue.enqueue(root, ["dedup", "x", "--output", str(root / "b")], root / "b")
    c = jobqueue.enqueue(root, ["dedup", "x", "--output", str(root / "c")], root / "c")
    assert [(r["run"], r["status"], r["position"]) for r in jobqueue.rows(root)] == \
        [("a", "running", None), ("b", "queued", 1), ("c", "queued", 2)]
    with pytest.raises(InputError, match="b: a job of the queue already writes there"):
        jobqueue.enqueue(root, ["dedup", "y", "--output", str(root / "b")], root / "b")
    assert jobqueue.cancel(root, b["id"]) == "b: cancelled before it started"
    # the queue lives in the workspace: a new app process reads the same state
    saved = json.loads((root / ".wb-queue.json").read_text())
    assert [(e["run"], e["state"]) for e in saved["jobs"]] == [("a", "launched"), ("b", "cancelled"), ("c", "queued")]
    assert jobqueue.pump(root) == []  # the slot is taken
    assert jobqueue.cancel(root, a["id"]) == "a: stopped"  # a running job: SIGTERM to the group the queue started
    assert sleepers[0].wait(timeout=10) == -15
    assert jobqueue.pump(root) == ["c"]
    assert [(r["run"], r["status"]) for r in jobqueue.rows(root)] == \
        [("a", "interrupted"), ("b", "cancelled"), ("c", "running")]
    assert jobqueue.clear_finished(root) == 2 and [r["run"] for r in jobqueue.rows(root)] == ["c"]
    assert len(sleepers) == 2 and c["id"]


def test_the_launcher_thread_starts_waiting_jobs_and_ends_when_none_wait(tmp_path, sleepers):
    root = tmp_path
    jobqueue.set_max_jobs(root, 1)
    jobqueue.enqueue(root, ["dedup", "x", "--output", str(root / "a")], root / "a")
    jobqueue.enqueue(root, ["dedup", "x", "--output", str(root / "b")], root / "b")
    assert jobqueue.ensure_launcher(root)
    sleepers[0].kill()  # the first job ends: the launcher starts the next within a tick
    for _ in range(100):  # bounded: 10 s
        if [r["status"] for r in jobqueue.rows(root)] == ["interrupted", "running"]:
            break
        time.sleep(0.1)
    assert [r["status"] for r in jobqueue.rows(root)] == ["interrupted", "running"] and len(sleepers) == 2
    sleepers[1].kill()
    sleepers[1].wait()
    thread = jobqueue._launchers[str(root.resolve())]
    thread.join(timeout=10)
    assert not thread.is_alive()  # nothing waits or runs: the launcher has ended


def test_queue_and_settings_refuse_bad_values_in_one_line(tmp_path, monkeypatch):
    def refused(argv, run_dir, cwd=None, resume=False):
        raise InputError(f"{run_dir}: holds a finished run; choose another output directory")

    monkeypatch.setattr(jobs, "launch", refused)
    ws = tmp_path / "ws"
    ws.mkdir()
    jobqueue.enqueue(ws, ["dedup", "x"], ws / "a")
    (row,) = jobqueue.rows(ws)  # a job that cannot start says why, and the queue goes on
    assert (row["status"], row["error"]) == ("error", f"{ws / 'a'}: holds a finished run; choose another output directory")
    with pytest.raises(InputError, match="max_jobs 0: must be a whole number of at least 1"):
        jobqueue.set_max_jobs(tmp_path, 0)
    (tmp_path / ".wb-queue.json").write_text('{"jobs": [1]}')
    assert jobqueue.rows(tmp_path)[0]["status"] == "unreadable"
    with pytest.raises(InputError, match=r"\.wb-queue\.json: expected `jobs` to be a list"):
        jobqueue.pump(tmp_path)


def test_relaunch_refuses_a_run_without_a_recorded_command(tmp_path):
    with pytest.raises(InputError, match="no launch record, manifest or marker names its command"):
        jobs.relaunch(tmp_path)
    write_atomic(tmp_path / MANIFEST, {"stage": "dedup", "argv": ["wb", "dedup", "a.jsonl", "--output", "o"]})
    assert jobs.recorded_argv(tmp_path) == ["dedup", "a.jsonl", "--output", "o"]


def test_settings_page_sets_the_queue_limit(tmp_path, monkeypatch):
    from apptest import no_exception, open_page

    at = open_page("settings", tmp_path, monkeypatch)
    at.number_input(key="max_jobs").set_value(3).run()
    no_exception(at)
    assert jobqueue.max_jobs(tmp_path) == 3
    at.run()
    no_exception(at)
    assert at.number_input(key="max_jobs").value == 3 and "max_jobs: 3" in (tmp_path / ".wb-ui.yaml").read_text()
