"""The Runs page over a workspace with corrupt run files: each run listed as unreadable, no traceback."""

from __future__ import annotations

from apptest import no_exception, open_page

from tests.workbench.test_corrupt_runs import CORRUPT, corrupt_workspace


def test_the_runs_page_shows_a_corrupt_workspace_without_a_traceback(tmp_path, monkeypatch):
    at = open_page("runs", corrupt_workspace(tmp_path), monkeypatch)
    no_exception(at)
    table = at.dataframe[0].value
    states = dict(zip(table["name"], table["state"], strict=True))
    assert states["good"] == "complete" and sum(s == "unreadable" for s in states.values()) == len(CORRUPT)
    at.selectbox(key="cmp_a").set_value("good")
    at.run()
    at.selectbox(key="cmp_b").set_value("usage-list")
    at.run()
    no_exception(at)
    assert any("usage-list: unreadable, not a finished run" in w.value for w in at.warning)
