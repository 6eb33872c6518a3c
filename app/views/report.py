"""Curation report: the funnel of a curate / dedup / decontam run, examples per drop reason, the LSH curve."""

from pathlib import Path
from urllib.parse import urlencode

import altair as alt
import polars as pl
import streamlit as st

from app import report, tables
from app.runs import runs_of_stage
from app.ui import page_setup, pick_run, shown_errors
from workbench.runfiles import MANIFEST, REMOVED, read_json

root = page_setup("Curation report")

with shown_errors():
    run = pick_run(root, runs_of_stage(root, "curate", "dedup", "decontam"), "Curation run")
    if run is not None:
        manifest = read_json(Path(run) / MANIFEST)
        if manifest is None:
            st.warning(f"{run.name}: unfinished (no {MANIFEST} yet); the report appears when it completes.")
            st.stop()
        rows = report.funnel(manifest)
        kept = rows[-1]["rows_after"]
        c1, c2, c3 = st.columns(3)
        c1.metric("rows in", f"{manifest.get('rows_in') or 0:,}")
        c2.metric("kept", f"{kept:,}")
        c3.metric("removed", f"{(manifest.get('rows_in') or 0) - kept:,}")
        st.subheader("Funnel")
        funnel = pl.DataFrame(rows)
        st.dataframe(funnel, hide_index=True, key="funnel",
                     column_config={"removed_share_of_step": st.column_config.NumberColumn("removed % of step", format="percent"),
                                    "removed_share_of_input": st.column_config.NumberColumn("removed % of input", format="percent")})
        steps = funnel.filter(~funnel["step"].is_in(["rows in", "kept"]))
        order = steps["step"].to_list()
        bars = alt.Chart(steps.to_pandas()).encode(
            x=alt.X("removed:Q", title="rows removed by the step"), y=alt.Y("step:N", sort=order, title=None),
            tooltip=["step", "rows_before", "removed", "rows_after", "reasons"])
        st.altair_chart(bars.mark_bar() + bars.mark_text(align="left", dx=4).encode(text="removed:Q"), width="stretch")
        removed = Path(run) / REMOVED
        st.subheader("Examples per drop reason")
        if not removed.exists():
            st.caption("this run removed nothing (no removed.parquet)")
        else:
            counts = tables.reason_counts(removed)
            if not counts:
                st.caption("no removed rows")
            for reason, n in counts:
                with st.expander(f"{reason} — {n:,} rows"):
                    st.dataframe(tables.for_grid(tables.read_page(removed, 0, 5, reasons=(reason,))).to_pandas(),
                                 hide_index=True)
                    link = urlencode({"run": st.query_params.get("run", ""), "file": REMOVED, "reason": reason})
                    st.markdown(f"[open all {n:,} in the data browser](browse?{link})")
        curve = report.lsh_curve(manifest)
        if curve:
            lsh = manifest["dedup"]["lsh"]
            st.subheader(f"LSH detection curve ({lsh['bands']} bands × {lsh['rows']} rows)")
            threshold = report.threshold(manifest)
            line = alt.Chart(pl.DataFrame(curve).to_pandas()).mark_line().encode(
                x=alt.X("jaccard:Q", title="Jaccard similarity of a pair"),
                y=alt.Y("p_candidate:Q", title="P(pair becomes a candidate)"))
            layers = [line]
            if threshold is not None:
                layers.append(alt.Chart(pl.DataFrame({"x": [threshold]}).to_pandas()).mark_rule(strokeDash=[4, 4]).encode(x="x:Q"))
            st.altair_chart(alt.layer(*layers), width="stretch")
            st.caption(f"threshold {threshold}; candidates are verified by exact Jaccard before any row is removed")
