"""Helpers for AppTest: run one page file of the app over a workspace, with query parameters."""

from __future__ import annotations

import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

PAGES = Path(__file__).resolve().parents[2] / "app" / "views"


def open_page(name: str, workspace: Path, monkeypatch, **query: str | list[str]) -> AppTest:
    monkeypatch.setenv("WB_UI_WORKSPACE", str(workspace))
    at = AppTest.from_file(str(PAGES / f"{name}.py"), default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def texts(at: AppTest) -> str:
    """Every markdown, caption, code, metric and message on the page, one string to search."""
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [c.value for c in at.code]
    parts += [f"{m.label}={m.value}" for m in at.metric] + [e.value for e in at.error] + [w.value for w in at.warning]
    parts += [i.value for i in at.info] + [s.value for s in at.subheader]
    return "\n".join(str(p) for p in parts)


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def wait_for(at: AppTest, text: str, seconds: float = 60.0) -> AppTest:
    """Rerun the page (as the live fragment would) until `text` shows, at most `seconds`."""
    deadline = time.monotonic() + seconds
    while text not in texts(at):
        assert time.monotonic() < deadline, f"{text!r} did not show within {seconds} s:\n{texts(at)}"
        time.sleep(0.5)
        at.run()
    return at
