"""Completion tokens per sample: exact where the server says (per-choice usage, logprobs, n = 1), otherwise
a marked estimate that the ledger keeps (and old ledgers gain the column)."""

from __future__ import annotations

import sqlite3

from llm.ledger import Ledger, UnitResult


def test_a_server_without_per_choice_usage_gives_counts_marked_as_estimates():
    from openai.types.chat import ChatCompletion

    from llm.backends.openai_http import _completion

    def body(choices: list[dict]) -> ChatCompletion:
        return ChatCompletion.model_validate({
            "id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": choices,
            "usage": {"prompt_tokens": 3, "completion_tokens": 10, "total_tokens": 13}})

    def choice(i: int, **extra) -> dict:
        return {"index": i, "message": {"role": "assistant", "content": "ab"}, "finish_reason": "stop", **extra}

    split = _completion(body([choice(0), choice(1), choice(2)]))
    assert [(c.completion_tokens, c.tokens_estimated) for c in split.choices] == [(4, True), (3, True), (3, True)]
    exact = _completion(body([choice(0, usage={"completion_tokens": 7}), choice(1, usage={"completion_tokens": 3})]))
    assert [(c.completion_tokens, c.tokens_estimated) for c in exact.choices] == [(7, False), (3, False)]
    one = _completion(body([choice(0)]))
    assert (one.choices[0].completion_tokens, one.choices[0].tokens_estimated) == (10, False)


def test_the_ledger_keeps_which_counts_are_estimates(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite", "k")
    for i, estimated in enumerate([True, False]):
        ledger.record(UnitResult("p", i, "h", "ok", None, "x", "stop", None, 3, 4, 1, "e", estimated))
    ledger.flush()
    table = ledger.results()
    assert table.column("tokens_estimated").to_pylist() == [True, False]
    assert table.column("completion_tokens").to_pylist() == [4, 4]


def test_a_ledger_from_before_the_estimate_flag_opens_and_resumes(tmp_path):
    path = tmp_path / "ledger.sqlite"
    with sqlite3.connect(path) as conn:  # the units table as it was: no tokens_estimated column
        conn.execute("CREATE TABLE units (key TEXT NOT NULL, prompt_id TEXT NOT NULL, sample_index INTEGER NOT NULL, "
                     "prompt_hash TEXT NOT NULL, status TEXT NOT NULL, reasoning TEXT, content TEXT, finish_reason "
                     "TEXT, error TEXT, prompt_tokens INTEGER, completion_tokens INTEGER, attempts INTEGER, endpoint "
                     "TEXT, finished_at REAL, PRIMARY KEY (key, prompt_id, sample_index))")
        conn.execute("INSERT INTO units VALUES ('k','p',0,'h','ok',NULL,'old','stop',NULL,3,5,1,'e',0)")
    ledger = Ledger(path, "k")
    assert ledger.done() == {("p", 0): "h"}
    ledger.record(UnitResult("p", 1, "h", "ok", None, "new", "stop", None, 3, 2, 1, "e", True))
    ledger.flush()
    table = ledger.results().sort_by("sample_index")
    assert table.column("content").to_pylist() == ["old", "new"]
    assert table.column("tokens_estimated").to_pylist() == [None, True]
