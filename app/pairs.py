"""Preference pairs: the text of each side, pair statistics by verdict, and the chosen-vs-rejected length
histogram, computed with polars over `data.parquet` of a prefs run (or any prompt/chosen/rejected file)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from workbench.records import message_text


def side_text(value: object) -> str:
    """A side as text: a string as is, a message list as its assistant turns (else its last turn)."""
    if isinstance(value, list) and not any(isinstance(m, dict) and m.get("role") == "assistant" for m in value):
        return message_text(value[-1:])
    return message_text(value, ("assistant",))


def prompt_text(value: object) -> str:
    """A prompt as text: a string as is, a message list as its turns' contents."""
    return message_text(value)


def _length_expr(name: str, schema: dict) -> pl.Expr:
    if f"{name}_chars" in schema:
        return pl.col(f"{name}_chars").cast(pl.Int64)
    if schema[name] == pl.String:
        return pl.col(name).str.len_chars().cast(pl.Int64)
    return pl.col(name).list.eval(pl.element().struct.field("content").str.len_chars()).list.sum().cast(pl.Int64)


def lengths(path: Path) -> pl.DataFrame:
    """(chosen_chars, rejected_chars, verdict?) per pair."""
    lf = pl.scan_parquet(path)
    schema = dict(lf.collect_schema())
    missing = {"chosen", "rejected"} - set(schema)
    if missing:
        from workbench.errors import InputError

        raise InputError(f"{path}: not a preference file (no {sorted(missing)[0]!r} column)")
    cols = [_length_expr("chosen", schema).alias("chosen_chars"), _length_expr("rejected", schema).alias("rejected_chars")]
    if "verdict" in schema:
        cols.append(pl.col("verdict"))
    return lf.select(cols).collect()


def pair_stats(path: Path) -> dict:
    """Pairs, pairs per verdict, mean lengths and how often the chosen side is the longer one."""
    frame = lengths(path)
    out = {"pairs": frame.height,
           "mean_chosen_chars": frame["chosen_chars"].mean() if frame.height else None,
           "mean_rejected_chars": frame["rejected_chars"].mean() if frame.height else None,
           "chosen_longer_share": float((frame["chosen_chars"] > frame["rejected_chars"]).mean()) if frame.height else None,
           "verdicts": {}}
    if "verdict" in frame.columns and frame.height:
        counts = frame.group_by("verdict").len().sort(["len", "verdict"], descending=[True, False])
        out["verdicts"] = {str(v): int(n) for v, n in counts.iter_rows()}
    return out


def length_histogram(path: Path, bins: int = 20) -> pl.DataFrame:
    """Long table (side, bin_start, bin_end, pairs) over shared bins of characters."""
    frame = lengths(path)
    if frame.height == 0:
        return pl.DataFrame(schema={"side": pl.String, "bin_start": pl.Int64, "bin_end": pl.Int64, "pairs": pl.UInt32})
    top = max(int(frame["chosen_chars"].max() or 0), int(frame["rejected_chars"].max() or 0), 1)
    width = max(1, -(-top // bins))
    parts = [frame.select((pl.col(f"{side}_chars") // width * width).alias("bin_start")).group_by("bin_start").len()
             .rename({"len": "pairs"}).with_columns(pl.lit(side).alias("side")) for side in ("chosen", "rejected")]
    out = pl.concat(parts).with_columns((pl.col("bin_start") + width).alias("bin_end"))
    return out.select("side", "bin_start", "bin_end", "pairs").sort(["side", "bin_start"])
