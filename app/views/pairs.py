"""Pairs: chosen beside rejected with verdict labels, the length histogram, pair statistics."""

from pathlib import Path

import altair as alt
import streamlit as st

from app import pairs, tables
from app.runs import runs_with_columns
from app.ui import page_setup, pick_run, shown_errors
from workbench.runfiles import PRODUCT, REMOVED

root = page_setup("Pairs")

with shown_errors():
    run = pick_run(root, runs_with_columns(root, {"chosen", "rejected"}), "Preference run")
    if run is not None:
        path = Path(run) / PRODUCT
        if not path.exists():
            st.warning(f"{run.name}: no {PRODUCT} yet (unfinished run).")
            st.stop()
        s = pairs.pair_stats(path)
        c = st.columns(4)
        c[0].metric("pairs", f"{s['pairs']:,}")
        c[1].metric("mean chosen chars", "-" if s["mean_chosen_chars"] is None else f"{s['mean_chosen_chars']:.0f}")
        c[2].metric("mean rejected chars", "-" if s["mean_rejected_chars"] is None else f"{s['mean_rejected_chars']:.0f}")
        c[3].metric("chosen is longer", "-" if s["chosen_longer_share"] is None else f"{s['chosen_longer_share']:.0%}")
        if s["verdicts"]:
            st.markdown("**Verdicts:** " + " · ".join(f"`{v}` {n:,}" for v, n in s["verdicts"].items()))
        hist = pairs.length_histogram(path)
        if hist.height:
            st.markdown("**Length of the chosen and rejected answers**")
            st.altair_chart(alt.Chart(hist.to_pandas()).mark_bar(opacity=0.55).encode(
                x=alt.X("bin_start:Q", bin=alt.Bin(binned=True), title="characters"), x2="bin_end:Q",
                y=alt.Y("pairs:Q", stack=None, axis=alt.Axis(tickMinStep=1)), color="side:N",
                tooltip=["side", "bin_start", "bin_end", "pairs"]), width="stretch")
        removed = Path(run) / REMOVED
        if removed.exists():
            st.caption("dropped pairs: " + ", ".join(f"{r} {n:,}" for r, n in tables.reason_counts(removed)))
        st.subheader("Pairs")
        verdicts = ["(all)", *s["verdicts"]]
        verdict = st.selectbox("Verdict", verdicts, key="pair_verdict")
        filters = () if verdict == "(all)" else (tables.Filter("verdict", "==", verdict),)
        total = tables.count_rows(path, filters)
        index = st.number_input("pair", min_value=0, max_value=max(0, total - 1), value=0, key="pair_index")
        if total:
            row = tables.full_row(path, int(index), filters)
            st.markdown(f"**{row.get('id')}** · verdict `{row.get('verdict', '-')}`")
            prompt = row.get("prompt")
            with st.chat_message("user"):
                st.text(pairs.prompt_text(prompt))
            left, right = st.columns(2)
            for col, side in ((left, "chosen"), (right, "rejected")):
                ok = row.get(f"{side}_verified")
                col.markdown(f"**{side}** · {row.get(f'{side}_model', '')} · "
                             f"{':material/check: verified' if ok else ':material/close: not verified' if ok is False else ''} · "
                             f"score {row.get(f'{side}_score', '-')}")
                col.text(pairs.side_text(row.get(side)))
