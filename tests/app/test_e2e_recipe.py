"""The Recipe page in a real headless Chromium: a two-step recipe drawn as a graph, started from the page,
its steps turning done, each linking to its run on the Runs page. The workspace holds only the recipe and its
source (no shared fixture workspace), served by `wb ui` on a free 127.0.0.1 port."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.app.e2e_support import serve_app, settle

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
RECIPE = """
name: loop
workspace: runs
steps:
  clean:
    command: curate
    inputs: [rows.jsonl]
    options: {decontam: false, dedup: false, filters: [refusal]}
  tidy:
    command: curate
    inputs: [{from: clean}]
    options: {decontam: false, dedup: false, field: [text]}
"""


@pytest.fixture
def recipe_app(tmp_path):
    """`wb ui` over a workspace holding loop.yaml and its source; stopped by process group."""
    root = tmp_path / "ws"
    root.mkdir()
    (root / "rows.jsonl").write_text("".join(json.dumps({"id": f"r{i}", "text": f"row {i % 7} of the source"}) + "\n"
                                             for i in range(20)))
    (root / "loop.yaml").write_text(RECIPE)
    with serve_app(root, tmp_path / "ui.log") as url:
        yield url, root


def test_recipe_page_draws_the_graph_starts_the_recipe_and_links_each_step_to_its_run(recipe_app, page):
    from playwright.sync_api import expect

    url, root = recipe_app
    page.goto(f"{url}/recipe")
    settle(page)
    graph = page.locator("[data-testid=stGraphVizChart] svg")
    expect(graph.locator("g.node")).to_have_count(2)
    expect(graph.locator("g.edge")).to_have_count(1)  # clean -> tidy
    expect(graph).to_contain_text("to run")
    assert "recipe=loop.yaml" in page.url
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_test_id("stMarkdown").get_by_text("2 of 2 steps finished")).to_be_visible(timeout=120_000)
    record = json.loads((root / "runs" / "recipe.json").read_text())
    assert record["state"] == "complete" and {s["outcome"] for s in record["steps"].values()} == {"done"}
    expect(graph.locator("g.node", has_text="done")).to_have_count(2)
    links = graph.locator("g.node a")
    expect(links).to_have_count(2)
    href = links.first.get_attribute("href") or links.first.get_attribute("xlink:href")
    clean = Path(record["steps"]["clean"]["run_dir"]).name
    assert href == f"./?run=runs%2F{clean}"
    page.goto(f"{url}/{href[2:]}")
    settle(page)
    expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible()
    assert f"run=runs%2F{clean}" in page.url or f"run=runs/{clean}" in page.url
    assert page.locator("[data-testid=stException]").count() == 0
