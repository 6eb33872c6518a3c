"""The dedup and decontamination explorer: near-duplicate clusters (each removed member beside the row
that was kept, with the words that differ marked) and benchmark matches (the shared n-gram span marked).
Everything here returns plain values or escaped HTML; the page only lays it out."""

from __future__ import annotations

import difflib
import html
import re
from pathlib import Path

import polars as pl

from workbench.runfiles import PRODUCT, REMOVED

DUPLICATE_REASONS = ("exact_duplicate", "near_duplicate", "semantic_duplicate")  # semantic: wb semdedup
_MATCH = re.compile(r'^(?P<count>\d+) shared (?P<n>\d+)-grams with (?P<bench>\S+) item (?P<item>\S+): "(?P<span>.*)"$', re.S)


def row_text(row: dict, fields: list[str] | None) -> str:
    """The text dedup compared: the run's fields joined (messages as their contents)."""
    names = [f.split(".")[0] for f in fields or []] or [k for k in ("text", "question", "prompt", "messages") if k in row]
    parts = []
    for name in dict.fromkeys(names):
        value = row.get(name)
        if isinstance(value, list):
            parts += [str(m.get("content", "")) if isinstance(m, dict) else str(m) for m in value]
        elif value is not None:
            parts.append(str(value))
    return "\n".join(parts)


def clusters(run_dir: Path) -> pl.DataFrame:
    """Duplicate clusters, largest first: cluster id, kept row id, reason, members removed, mean similarity."""
    path = Path(run_dir) / REMOVED
    empty = pl.DataFrame(schema={"cluster_id": pl.String, "kept_id": pl.String, "reason": pl.String,
                                 "removed": pl.UInt32, "mean_similarity": pl.Float64})
    if not path.exists():
        return empty
    lf = pl.scan_parquet(path)
    if not {"reason", "duplicate_of"} <= set(lf.collect_schema()):
        return empty
    lf = lf.filter(pl.col("reason").is_in(list(DUPLICATE_REASONS)))
    schema = lf.collect_schema()
    cluster = pl.col("cluster_id").cast(pl.String) if "cluster_id" in schema else pl.col("duplicate_of")
    similarity = pl.col("similarity") if "similarity" in schema else pl.lit(None, pl.Float64)
    return (lf.with_columns(cluster.fill_null(pl.col("duplicate_of")).alias("cluster_id"))
            .group_by("cluster_id")
            .agg(pl.col("duplicate_of").first().alias("kept_id"), pl.col("reason").first(),
                 pl.len().alias("removed"), similarity.mean().alias("mean_similarity"))
            .sort(["removed", "cluster_id"], descending=[True, False]).collect())


def cluster_members(run_dir: Path, cluster_id: str) -> tuple[dict | None, list[dict]]:
    """(the kept row, the removed members) of one cluster."""
    run_dir = Path(run_dir)
    lf = pl.scan_parquet(run_dir / REMOVED)
    schema = lf.collect_schema()
    key = pl.col("cluster_id").cast(pl.String) if "cluster_id" in schema else pl.col("duplicate_of")
    members = lf.filter(key.fill_null(pl.col("duplicate_of")) == cluster_id).collect().to_dicts()
    kept = None
    if members and (run_dir / PRODUCT).exists():
        kept_id = members[0].get("duplicate_of")
        found = pl.scan_parquet(run_dir / PRODUCT).filter(pl.col("id").cast(pl.String) == str(kept_id)).head(1).collect()
        kept = found.to_dicts()[0] if found.height else None
    return kept, members


def word_jaccard(a: str, b: str, ngram: int = 5) -> float:
    """Jaccard similarity of the word n-gram sets (one shingle of all words for shorter texts)."""
    def shingles(text: str) -> set[tuple[str, ...]]:
        words = re.findall(r"\w+", text.lower())
        if len(words) < ngram:
            return {tuple(words)}
        return {tuple(words[i:i + ngram]) for i in range(len(words) - ngram + 1)}
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def diff_html(kept: str, member: str) -> tuple[str, str]:
    """(kept, member) as HTML with the words only one side has inside <mark>."""
    ta, tb = re.findall(r"\S+|\s+", kept), re.findall(r"\S+|\s+", member)
    out_a, out_b = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=ta, b=tb, autojunk=False).get_opcodes():
        out_a.append(_marked(ta[i1:i2], op != "equal"))
        out_b.append(_marked(tb[j1:j2], op != "equal"))
    return "".join(out_a), "".join(out_b)


def _marked(tokens: list[str], mark: bool) -> str:
    return "".join(f"<mark>{html.escape(t)}</mark>" if mark and t.strip() else html.escape(t) for t in tokens)


def contamination(run_dir: Path, limit: int = 200) -> list[dict]:
    """Rows removed as contaminated, with the benchmark, item, shared n-gram count and matched span."""
    path = Path(run_dir) / REMOVED
    if not path.exists():
        return []
    lf = pl.scan_parquet(path)
    if "reason" not in lf.collect_schema():
        return []
    rows = lf.filter(pl.col("reason").str.starts_with("contaminated")).head(limit).collect().to_dicts()
    for row in rows:
        m = _MATCH.match(row.get("detail") or "")
        row["_match"] = m.groupdict() if m else {"span": "", "bench": row["reason"].split(":", 1)[-1]}
    return rows


def highlight_span(text: str, span: str) -> str:
    """`text` as HTML with the words of the (normalised) `span` marked where they occur in sequence."""
    words = re.findall(r"\w+", span.lower())
    if not words:
        return html.escape(text)
    pattern = re.compile(r"\W+".join(re.escape(w) for w in words), re.I)
    out, last = [], 0
    for m in pattern.finditer(text):
        out += [html.escape(text[last:m.start()]), f"<mark>{html.escape(m.group(0))}</mark>"]
        last = m.end()
    out.append(html.escape(text[last:]))
    return "".join(out)
