"""Build the run's products from the prompts and the ledger: `data.parquet` (one row per unit) and `sft.parquet`.

Joins are columnar (Arrow); rows keep the prompt order, then the sample index.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from llm.prompts import MESSAGES
from llm.reasoning import render_reasoning


def unit_table(prompts: pa.Table, n: int, results: pa.Table, model: str) -> pa.Table:
    """One row per (prompt_id, sample_index) with the ledger's outcome; a unit with no result is `failed`."""
    rows = prompts.num_rows
    prompt_row = pa.array(np.repeat(np.arange(rows), n))
    base = prompts.select(["prompt_id", "prompt_hash"]).take(prompt_row)
    base = base.append_column("sample_index", pa.array(np.tile(np.arange(n), rows), pa.int64()))
    base = base.append_column("_row", prompt_row)
    base = base.append_column("_order", pa.array(np.arange(rows * n), pa.int64()))
    # Arrow joins carry no list columns, so the messages and references are taken by row afterwards.
    joined = base.join(results, keys=["prompt_id", "sample_index", "prompt_hash"], join_type="left outer")
    joined = joined.sort_by("_order")
    extra = prompts.select(["prompt", "answer", "tests"]).take(joined.column("_row"))
    missing = pc.is_null(joined.column("status"))
    status = pc.if_else(missing, "failed", joined.column("status"))
    error = pc.if_else(missing, "no result recorded", joined.column("error"))
    ids = pc.binary_join_element_wise(joined.column("prompt_id"), pc.cast(joined.column("sample_index"), pa.string()),
                                      "-")
    cols = {
        "id": ids, "prompt_id": joined.column("prompt_id"), "sample_index": joined.column("sample_index"),
        "prompt": extra.column("prompt"), "reasoning": joined.column("reasoning"),
        "content": joined.column("content"), "finish_reason": joined.column("finish_reason"),
        "status": status, "error": error,
        "prompt_tokens": pc.fill_null(joined.column("prompt_tokens"), 0),
        "completion_tokens": pc.fill_null(joined.column("completion_tokens"), 0),
        "tokens_estimated": pc.fill_null(joined.column("tokens_estimated"), False),
        # fresh | cached (the response cache answered: its tokens cost nothing now) | batch
        "billing": pc.fill_null(joined.column("billing"), "fresh"),
        "attempts": pc.fill_null(joined.column("attempts"), 0), "endpoint": joined.column("endpoint"),
        "model": pa.array([model] * joined.num_rows, pa.string()),
        "answer": extra.column("answer"), "tests": extra.column("tests"),
    }
    return pa.table(cols)


def add_verdicts(table: pa.Table, verdicts: dict[tuple[str, int], tuple[bool | None, str | None]]) -> pa.Table:
    keys = zip(table.column("prompt_id").to_pylist(), table.column("sample_index").to_pylist(), strict=True)
    found = [verdicts.get(k, (None, None)) for k in keys]
    table = table.append_column("verified", pa.array([v for v, _ in found], pa.bool_()))
    return table.append_column("verify_detail", pa.array([d for _, d in found], pa.string()))


def sft_table(data: pa.Table, think_format: str) -> pa.Table:
    """SFT messages rows for units with status ok: the prompt plus the rendered assistant reply."""
    ok = data.filter(pc.equal(data.column("status"), "ok"))
    messages = []
    for prompt, reasoning, content in zip(ok.column("prompt").to_pylist(), ok.column("reasoning").to_pylist(),
                                          ok.column("content").to_pylist(), strict=True):
        reply = {"role": "assistant", "content": render_reasoning(reasoning, content, think_format)}
        messages.append([*prompt, reply])
    return pa.table({"id": ok.column("id"), "prompt_id": ok.column("prompt_id"), "messages": pa.array(messages, MESSAGES),
                     "reasoning": ok.column("reasoning"), "verified": ok.column("verified"),
                     "source": ok.column("model")})
