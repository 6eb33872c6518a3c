"""Reasoning capture: server fields and `<think>` blocks become `reasoning` and `content` columns."""

from __future__ import annotations

import polars as pl

from distill_data.pipeline import distill
from llm.reasoning import render_reasoning, split_reasoning
from tests.distill_data.distill_helpers import fast_config, write_prompts


def test_split_reasoning_forms():
    assert split_reasoning("<think>a b</think>\n\nanswer") == ("a b", "answer")
    assert split_reasoning("answer", "from field") == ("from field", "answer")
    assert split_reasoning("pre-opened</think>answer") == ("pre-opened", "answer")
    assert split_reasoning("<think>never closed") == ("never closed", "")
    assert split_reasoning("plain") == (None, "plain")
    assert split_reasoning(None) == (None, None)


def test_render_formats():
    assert render_reasoning("r", "c") == "<think>\nr\n</think>\n\nc"
    assert render_reasoning("r", "c", "openthoughts").startswith("<|begin_of_thought|>\n\nr")
    assert render_reasoning("r", "c", "none") == "c" and render_reasoning(None, "c") == "c"


def test_reasoning_columns_end_to_end(tmp_path, mock):
    src = write_prompts(tmp_path / "p.jsonl", ["rs [think]", "rs [rc]", "rs plain"])
    distill(fast_config(src, tmp_path / "run", mock.url, think_format="openthoughts"))
    df = pl.read_parquet(tmp_path / "run" / "data.parquet")
    assert df["reasoning"].to_list() == ["thinking 0", "reasoning 0", None]
    assert df["content"].to_list()[0] == "sample 0 for: rs [think]"
    sft = pl.read_parquet(tmp_path / "run" / "sft.parquet")
    first = sft["messages"].to_list()[0][-1]["content"]
    assert first.startswith("<|begin_of_thought|>\n\nthinking 0") and first.endswith("<|end_of_solution|>")
    assert sft["messages"].to_list()[2][-1]["content"] == "sample 0 for: rs plain"
