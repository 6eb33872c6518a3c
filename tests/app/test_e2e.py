"""End-to-end tests in a real headless Chromium (Debian's `chromium`, driven by Playwright's Python package;
Playwright's own browser download is never used). `wb ui` serves a copy of the test workspace on a free
127.0.0.1 port. Marked `e2e`; `.ci/run` installs chromium when it is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.app.e2e_support import settle
from tests.app.rows import text_rows, write_jsonl

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
PAGES = {"": "Runs", "new_job": "New job", "browse": "Data browser", "report": "Curation report",
         "dedup": "Dedup & decontamination", "mixture": "Mixture lab", "generation": "Generation monitor",
         "pairs": "Pairs", "training": "Training", "eval": "Evaluations", "chat": "Chat", "recipe": "Recipe",
         "settings": "Settings"}



def test_every_page_opens_without_an_exception(app_url, page):
    url, _ = app_url
    from playwright.sync_api import expect

    for path, title in PAGES.items():
        page.goto(f"{url}/{path}")
        expect(page.get_by_role("heading", name=title, exact=True).first).to_be_visible(timeout=60_000)
        settle(page)
        assert page.locator("[data-testid=stException]").count() == 0, path


def _launch_dedup(page, url: str, source: Path, output: str) -> None:
    page.goto(f"{url}/new_job?cmd=dedup")
    settle(page)
    box = page.get_by_role("textbox", name="sources (space-separated)")
    box.fill(str(source))
    box.press("Enter")
    settle(page)
    out = page.get_by_role("textbox", name="--output (relative to the workspace)")
    out.fill(output)
    out.press("Enter")
    settle(page)
    page.get_by_role("button", name="Launch").click()


def test_launch_a_dedup_from_the_form_and_watch_it_complete(app_url, page, small_jsonl):
    from playwright.sync_api import expect

    url, root = app_url
    _launch_dedup(page, url, small_jsonl, "jobs/e2e-dd")
    expect(page.get_by_text("state: complete")).to_be_visible(timeout=120_000)
    assert "run=jobs%2Fe2e-dd" in page.url or "run=jobs/e2e-dd" in page.url
    assert (root / "jobs" / "e2e-dd" / "manifest.json").exists()
    assert page.locator("[data-testid=stException]").count() == 0


def test_reload_mid_run_reattaches(app_url, page, tmp_path):
    from playwright.sync_api import expect

    url, root = app_url
    rows = [r for seed in range(1500) for r in text_rows(40, seed)]  # ~63k rows: dedup runs for seconds
    big = write_jsonl(tmp_path / "big.jsonl", [{**r, "id": f"{i}"} for i, r in enumerate(rows)])
    _launch_dedup(page, url, big, "jobs/e2e-big")
    expect(page.get_by_text("state: running")).to_be_visible(timeout=60_000)
    page.reload()  # the job does not depend on the page: the URL's run id re-attaches the panel
    expect(page.get_by_text("Job jobs/e2e-big")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("state: complete")).to_be_visible(timeout=180_000)
    assert (root / "jobs" / "e2e-big" / "manifest.json").exists()


def test_filter_removed_rows_by_reason(app_url, page):
    from playwright.sync_api import expect

    url, _ = app_url
    page.goto(f"{url}/browse?run=cur&file=removed.parquet")
    settle(page)
    expect(page.locator("[data-testid=stMarkdown]", has_text="· 3 rows")).to_be_visible()
    page.locator("[data-testid=stMultiSelect]").click()
    page.get_by_role("option", name="exact_duplicate (1)").click()
    settle(page)
    expect(page.locator("[data-testid=stMarkdown]", has_text="· 1 rows")).to_be_visible()
    assert "reason=exact_duplicate" in page.url
    assert page.locator("[data-testid=stException]").count() == 0
