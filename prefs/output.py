"""The run's products from `Pairs`: `data.parquet` (kept), `removed.parquet` (dropped, with reasons), and
the pair statistics for the manifest.

Preference rows are TRL's explicit-prompt conversational form: `prompt` (messages), `chosen` and
`rejected` (one assistant message each), plus provenance and scores. Rejection sampling writes SFT
`messages` rows (prompt + the best reply) instead.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from llm.prompts import MESSAGES
from prefs.pairing import Pairs


def _take(samples: pa.Table, name: str, idx: np.ndarray) -> pa.Array:
    """`samples[name][idx]`, null where idx is -1."""
    indices = pa.array(idx, pa.int64(), mask=idx < 0)
    return samples.column(name).take(indices).combine_chunks()


def _assistant(texts: list[str | None]) -> pa.Array:
    return pa.array([None if t is None else [{"role": "assistant", "content": t}] for t in texts], MESSAGES)


def pair_table(samples: pa.Table, texts: list[str | None], prompts: pa.Table, pairs: Pairs, strategy: str,
               source: str) -> pa.Table:
    """Every candidate pair (kept or not) with a `reason` column (null: kept)."""
    text = np.array(texts, dtype=object)
    c, r = pairs.chosen, pairs.rejected
    ids = pc.binary_join_element_wise(prompts.column("prompt_id").take(pairs.prompt_row),
                                      pa.array(pairs.pair_index.astype(str)), "-")
    cols = {
        "id": ids, "prompt_id": prompts.column("prompt_id").take(pairs.prompt_row),
        "prompt": prompts.column("prompt").take(pairs.prompt_row),
        "chosen": _assistant([text[i] if i >= 0 else None for i in c]),
        "rejected": _assistant([text[i] if i >= 0 else None for i in r]),
    }
    for side, idx in (("chosen", c), ("rejected", r)):
        cols[f"{side}_model"] = _take(samples, "model", idx)
        cols[f"{side}_score"] = _take(samples, "score", idx)
        cols[f"{side}_verified"] = _take(samples, "verified", idx)
        cols[f"{side}_tokens"] = _take(samples, "completion_tokens", idx)
        if "tokens_estimated" in samples.column_names:  # a share of the request's total, not this sample's count
            cols[f"{side}_tokens_estimated"] = _take(samples, "tokens_estimated", idx)
        cols[f"{side}_chars"] = pa.array([len(text[i] or "") if i >= 0 else None for i in idx], pa.int64())
        cols[f"{side}_sample"] = _take(samples, "sample_index", idx)
        cols[f"{side}_status"] = _take(samples, "status", idx)
    cols["verdict"] = pa.array(pairs.verdict.tolist(), pa.string())
    cols["source"] = pa.array([source] * len(c), pa.string())
    cols["strategy"] = pa.array([strategy] * len(c), pa.string())
    cols["reason"] = pa.array(pairs.reason.tolist(), pa.string())
    return pa.table(cols)


def sft_rows(table: pa.Table) -> pa.Table:
    """Rejection sampling: the prompt plus the best reply as `messages`, with its provenance (kept rows only)."""
    messages = [[*p, *c] for p, c in zip(table.column("prompt").to_pylist(), table.column("chosen").to_pylist(),
                                         strict=True)]
    return pa.table({"id": table.column("prompt_id"), "prompt_id": table.column("prompt_id"),
                     "messages": pa.array(messages, MESSAGES), "model": table.column("chosen_model"),
                     "score": table.column("chosen_score"), "verified": table.column("chosen_verified"),
                     "tokens": table.column("chosen_tokens"), "sample_index": table.column("chosen_sample"),
                     "source": table.column("source"), "strategy": table.column("strategy")})


def split_kept(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(kept rows without `reason`, dropped rows with it)."""
    dropped = pc.is_valid(table.column("reason"))
    kept = table.filter(pc.invert(dropped))
    return kept.drop_columns(["reason"]), table.filter(dropped)


def length_stats(values: pa.Array) -> dict:
    """count, mean, min, p10, p50, p90, max of the non-null values (empty: count 0)."""
    arr = np.asarray(values.drop_null().to_numpy(zero_copy_only=False), dtype=float)
    if not len(arr):
        return {"count": 0}
    p10, p50, p90 = np.percentile(arr, [10, 50, 90])
    return {"count": int(len(arr)), "mean": round(float(arr.mean()), 2), "min": float(arr.min()),
            "p10": float(p10), "p50": float(p50), "p90": float(p90), "max": float(arr.max())}


def pair_stats(kept: pa.Table, removed: pa.Table, preference: bool) -> dict:
    """Counts per reason, chosen/rejected lengths, verifier agreement (chosen right and rejected wrong)."""
    reasons = removed.column("reason").value_counts().to_pylist()
    stats: dict = {"candidates": kept.num_rows + removed.num_rows, "kept": kept.num_rows,
                   "dropped": {d["values"]: d["counts"] for d in reasons}}
    sides = ("chosen", "rejected") if preference else ("chosen",)
    column = (lambda s, what: kept.column(f"{s}_{what}")) if preference else (lambda s, what: kept.column(what))
    stats["lengths"] = {s: {"tokens": length_stats(column(s, "tokens"))} for s in sides}
    if preference:
        for s in sides:
            stats["lengths"][s]["chars"] = length_stats(kept.column(f"{s}_chars"))
        longer = pc.sum(pc.greater(kept.column("chosen_tokens"), kept.column("rejected_tokens"))).as_py() or 0
        stats["chosen_longer_fraction"] = round(longer / kept.num_rows, 4) if kept.num_rows else None
        verdicts = pa.concat_arrays([kept.column("verdict").combine_chunks(),
                                     removed.column("verdict").combine_chunks().drop_null()]).value_counts().to_pylist()
        counts = {d["values"] or "unverified": d["counts"] for d in verdicts}
        agree = counts.get("chosen_correct", 0)
        inverted = counts.get("swapped", 0) + counts.get("inverted", 0)
        stats["verifier"] = {"counts": counts, "agreement": round(agree / (agree + inverted), 4)
                             if agree + inverted else None}
        models = pc.value_counts(kept.column("chosen_model")).to_pylist()
        stats["chosen_models"] = {d["values"]: d["counts"] for d in models}
    return stats
