"""Browser tests of the data pages in headless Chromium (as tests/app/test_e2e.py, whose app, browser and page
fixtures they reuse over a workspace of their own): search a chat column and sort the whole file by answer
length (issue 25 item 7), the Evaluations page with its chart and paired compare (item 8), and two models
answering side by side on the Chat page (item 11). Marked `e2e`."""

from __future__ import annotations

import shutil

import pytest
from test_data_tools import chat_file

from tests.app.e2e_support import settle

# tests/app/conftest.py's fixtures (`app_url` over this module's `workspace`, `browser`, `page`) by name

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def workspace(workspace, tmp_path_factory):
    """The app's workspace for this module: the curate run, a chat file, two eval runs, and two Settings
    endpoints on a scripted mock server that answers "<model> says <message>"."""
    from evalruns import make_eval_runs

    from app import settings
    from tests.mock_server import MockServer

    root = tmp_path_factory.mktemp("e2e-data") / "ws"
    shutil.copytree(workspace / "cur", root / "cur")
    make_eval_runs(root)
    chat_file(root / "chat.parquet")
    server = MockServer(script=lambda text, req: f"{text} [reply:{req['model']} says {text}]").start()
    settings.save(root, {"endpoints": [{"name": "mockA", "base_url": server.url, "api_key_env": None},
                                       {"name": "mockB", "base_url": server.url, "api_key_env": None}]})
    yield root
    server.stop()


def choose(pg, label: str, option: str) -> None:
    """Pick `option` in the first select box labelled exactly `label` (a click that lands while the page
    reruns can close the list again: at most three tries)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    box = pg.locator("[data-testid=stSelectbox]").filter(has=pg.get_by_text(label, exact=True)).first
    for attempt in range(3):
        box.click()
        try:
            pg.get_by_role("option", name=option, exact=True).click(timeout=5_000)
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise
            pg.keyboard.press("Escape")
            settle(pg)
    settle(pg)


def no_exception(pg) -> None:
    assert pg.locator("[data-testid=stException]").count() == 0


def test_search_a_chat_column_and_sort_the_whole_file(app_url, page):
    from playwright.sync_api import expect

    url, _ = app_url
    page.goto(f"{url}/browse?path=chat.parquet")
    settle(page)
    expect(page.locator("[data-testid=stMarkdown]", has_text="· 5 rows")).to_be_visible()
    choose(page, "Sort by", "messages")
    choose(page, "Sort on", "assistant characters")
    expect(page.get_by_text("Row 0 · id c1")).to_be_visible()  # the longest answer, from the last page of file order
    page.get_by_text("Filter by column").click()
    page.get_by_text("Operator", exact=True).wait_for()
    choose(page, "Column", "messages")
    choose(page, "Operator", "contains")
    page.get_by_role("textbox", name="Value").fill("PARIS")
    page.get_by_role("button", name="Add").click()
    settle(page)
    expect(page.locator("[data-testid=stMarkdown]", has_text="· 1 rows")).to_be_visible()
    expect(page.get_by_text("Row 0 · id c2")).to_be_visible()
    no_exception(page)


def test_eval_page_charts_stages_and_compares_paired(app_url, page):
    from playwright.sync_api import expect

    url, _ = app_url
    page.goto(f"{url}/eval")
    settle(page)
    expect(page.get_by_role("heading", name="Benchmarks by stage")).to_be_visible()
    page.wait_for_selector("[data-testid=stVegaLiteChart] svg, [data-testid=stVegaLiteChart] canvas")
    page.get_by_role("button", name="Compare").click()
    expect(page.get_by_text("[+10.0, +70.0]")).to_be_visible(timeout=60_000)
    no_exception(page)


def test_chat_two_endpoints_side_by_side(app_url, page):
    from playwright.sync_api import expect

    url, _ = app_url
    page.goto(f"{url}/chat")
    settle(page)
    choose(page, "Model B (side by side)", "endpoint: mockB")
    model_b = page.get_by_role("textbox", name="Model id").nth(1)
    model_b.fill("other")
    model_b.press("Enter")
    settle(page)
    box = page.get_by_placeholder("Message both models")
    box.fill("ping")
    box.press("Enter")
    expect(page.get_by_text("mock says ping")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("other says ping")).to_be_visible()
    no_exception(page)
