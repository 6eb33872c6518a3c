"""Job life cycle in a real headless Chromium (as tests/app/test_e2e.py): a distill against a scripted
endpoint fails and the app says so in one line; the form sends a served model name as typed although a run of
that name is in the workspace; Retry failed units completes the run; Clone and leaving the page keep the
form's values; the job queue runs one job at a time and cancels a waiting one.

Set WB_E2E_SHOTS=DIR to save a screenshot of each page the tests pass through."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.app.e2e_support import serve_app, settle
from tests.mock_server import MockServer
from workbench.runfiles import run_state

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def endpoint():
    """A scripted endpoint that serves only the model named `teacher`, and fails every request while
    `endpoint.fail` is set."""
    server = MockServer()
    server.fail = True
    server.script = lambda text, request: "[400]" if server.fail or request.get("model") != "teacher" else text
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def jobs_app(tmp_path_factory):
    """A workspace with a run directory named `teacher` (the name the form must not turn into a path), two
    prompt files, and the app over it."""
    root = tmp_path_factory.mktemp("e2e-jobs") / "ws"
    (root / "teacher").mkdir(parents=True)
    (root / "teacher" / "data.jsonl").write_text('{"id": "t0", "text": "a run named like the model"}\n')
    (root / "prompts.jsonl").write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"What is {i} + {i}?"}) + "\n"
                                                for i in range(2)))
    (root / "slow.jsonl").write_text(json.dumps({"id": "s0", "prompt": "[slow:60] take your time"}) + "\n")
    with serve_app(root, root.parent / "ui.log") as url:
        yield url, root


def shot(page, name: str) -> None:
    folder = os.environ.get("WB_E2E_SHOTS")
    if folder:  # the app scrolls inside stMain: a viewport as tall as its content shows all of it
        Path(folder).mkdir(parents=True, exist_ok=True)
        height = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
        page.set_viewport_size({"width": 1400, "height": min(4000, max(1000, height + 50))})
        page.screenshot(path=str(Path(folder) / f"{name}.png"))
        page.set_viewport_size({"width": 1400, "height": 1000})


def fill(page, label: str, value: str) -> None:
    box = page.get_by_role("textbox", name=label, exact=True)
    box.fill(value)
    box.press("Enter")
    settle(page)


def distill_form(page, url: str, endpoint_url: str, prompts: str, output: str, extra: str = "") -> None:
    """The distill form with prompts, output and (through the YAML box) the model and its endpoint."""
    page.goto(f"{url}/new_job?cmd=distill")
    settle(page)
    fill(page, "prompts", prompts)
    fill(page, "--output (relative to the workspace)", output)
    page.get_by_text("Load or save settings as YAML").click()
    page.get_by_role("textbox", name="YAML settings").fill(
        f"model: teacher\nbase_url: ['{endpoint_url}']\nmax_attempts: 1\nmax_tokens: 16\n{extra}")
    page.get_by_role("button", name="Load into the form").click()
    settle(page)


def test_failed_run_says_why_then_retry_completes_it_and_clone_and_the_form_keep_values(jobs_app, endpoint, page):
    from playwright.sync_api import expect

    url, root = jobs_app
    distill_form(page, url, endpoint.url, "prompts.jsonl", "jobs/d1")
    # item 2: `teacher` is a run in the workspace, but with --base-url it names the served model
    expect(page.get_by_text("teacher: a model name on the endpoint, sent as typed")).to_be_visible()
    expect(page.get_by_text(f"prompts.jsonl → {root / 'prompts.jsonl'}")).to_be_visible()
    command = page.locator("[data-testid=stCode]").last.inner_text()
    assert "--model teacher " in command and f"{root}/teacher" not in command
    shot(page, "new_job")
    page.get_by_role("button", name="Launch").click()
    # item 1: every unit failed -> failed, with the one-line reason
    expect(page.get_by_text("state: failed")).to_be_visible(timeout=120_000)
    expect(page.get_by_text("failed: every unit failed (2 of 2")).to_be_visible()
    settle(page)  # the panel reran the page once when the run ended
    shot(page, "job_failed")
    # item 5: retry the failed units once the endpoint works
    endpoint.fail = False
    page.get_by_role("button", name="Retry failed units").click()
    expect(page.get_by_text("state: complete")).to_be_visible(timeout=120_000)
    expect(page.get_by_role("button", name="Train on this (SFT)")).to_be_visible()
    settle(page)
    shot(page, "job_complete")
    manifest = json.loads((root / "jobs" / "d1" / "manifest.json").read_text())
    assert manifest["argv"][manifest["argv"].index("--model") + 1] == "teacher"
    assert (root / "jobs" / "d1" / "wb.log").read_text().count("$ wb distill") == 2
    # Clone: the same command in the form, a new output name
    page.get_by_role("button", name="Clone into the form").click()
    expect(page.get_by_text("cloned from jobs/d1")).to_be_visible()
    settle(page)
    assert page.get_by_role("textbox", name="--model", exact=True).input_value() == "teacher"
    assert page.get_by_role("textbox", name="prompts", exact=True).input_value() == str(root / "prompts.jsonl")
    assert page.get_by_role("textbox", name="--output (relative to the workspace)").input_value() != "jobs/d1"
    # the form keeps its values when you leave the page and come back
    fill(page, "--model", "teacher-2")
    page.locator("[data-testid=stSidebarNav]").get_by_role("link", name="Runs").click()
    settle(page)
    page.locator("[data-testid=stSidebarNav]").get_by_role("link", name="New job").click()
    settle(page)
    assert page.get_by_role("textbox", name="--model", exact=True).input_value() == "teacher-2"
    assert page.locator("[data-testid=stException]").count() == 0


def test_the_queue_runs_one_job_at_a_time_and_cancels_a_waiting_one(jobs_app, endpoint, page):
    from playwright.sync_api import expect

    url, root = jobs_app
    endpoint.fail = False
    (root / ".wb-ui.yaml").write_text("endpoints: []\nmax_jobs: 1\n")
    distill_form(page, url, endpoint.url, "slow.jsonl", "jobs/q1")
    page.get_by_role("button", name="Add to queue").click()
    expect(page.get_by_text("jobs/q1: added to the queue")).to_be_visible()
    fill(page, "--output (relative to the workspace)", "jobs/q2")
    page.get_by_role("button", name="Add to queue").click()
    expect(page.get_by_text("jobs/q2: added to the queue")).to_be_visible()
    page.goto(url)
    settle(page)
    expect(page.get_by_text("1 queued · 1 running · at most 1 at once")).to_be_visible()
    shot(page, "runs_queue")
    page.get_by_role("combobox", name="Job", exact=True).click()
    page.get_by_role("option", name="jobs/q2 (queued)").click()
    settle(page)
    page.get_by_role("button", name="Cancel").click()
    # generous: under load the click's rerun can take several seconds (bounded; not a speed claim)
    expect(page.get_by_text("jobs/q2: cancelled before it started")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("0 queued · 1 running")).to_be_visible()
    page.get_by_role("button", name="Cancel").click()  # now the running one: stopped by its process group
    expect(page.get_by_text("0 queued · 0 running")).to_be_visible(timeout=60_000)
    queue = json.loads((root / ".wb-queue.json").read_text())["jobs"]
    assert [(e["run"], e["state"]) for e in queue] == [("jobs/q1", "launched"), ("jobs/q2", "cancelled")]
    assert not (root / "jobs" / "q2" / "wb.log").exists()  # never started
    assert run_state(root / "jobs" / "q1").state == "interrupted"
    assert page.locator("[data-testid=stException]").count() == 0
