"""Dedup and decontamination explorer: duplicate clusters by size with each removed member beside the kept
row (differing words marked), and benchmark matches with the shared n-gram span marked."""

from pathlib import Path

import streamlit as st

from app import explorer
from app.runs import runs_of_stage
from app.ui import page_setup, pick_run, shown_errors
from workbench.runfiles import MANIFEST, read_json

root = page_setup("Dedup & decontamination")
BOX = "<div style='white-space: pre-wrap; border: 1px solid #ddd; border-radius: 6px; padding: 8px'>{}</div>"

with shown_errors():
    run = pick_run(root, runs_of_stage(root, "curate", "dedup", "decontam"), "Curation run")
    if run is not None:
        manifest = read_json(Path(run) / MANIFEST) or {}
        fields = manifest.get("fields") or []
        ngram = int((manifest.get("minhash") or {}).get("ngram", 5))
        clusters = explorer.clusters(run)
        matches = explorer.contamination(run)
        dup_tab, contam_tab = st.tabs([f"Duplicate clusters ({clusters.height:,})",
                                       f"Benchmark matches ({len(matches):,}{'+' if len(matches) >= 200 else ''})"])
        with dup_tab:
            if clusters.height == 0:
                st.info("No duplicates were removed in this run.")
            else:
                st.caption(f"{clusters.height:,} clusters, {int(clusters['removed'].sum()):,} rows removed as duplicates")
                st.dataframe(clusters.to_pandas(), hide_index=True, key="clusters")
                ids = clusters["cluster_id"].to_list()
                cluster = st.selectbox("Cluster", ids[:500], key="cluster",
                                       format_func=lambda c: f"{c} ({clusters.filter(clusters['cluster_id'] == c)['removed'][0]} removed)")
                kept, members = explorer.cluster_members(run, cluster)
                kept_text = explorer.row_text(kept, fields) if kept else ""
                for member in members[:20]:
                    text = explorer.row_text(member, fields)
                    sim = member.get("similarity")
                    jac = sim if sim is not None else explorer.word_jaccard(kept_text, text, ngram)
                    measure = "cosine" if member.get("reason") == "semantic_duplicate" else "Jaccard"
                    st.markdown(f"**{member.get('id')}** · {member.get('reason')} · {measure} **{jac:.3f}**"
                                + (" (exact)" if member.get("reason") == "exact_duplicate" else ""))
                    a, b = explorer.diff_html(kept_text, text)
                    left, right = st.columns(2)
                    left.caption(f"kept: {kept.get('id') if kept else '(not in this run: kept by --against)'}")
                    left.markdown(BOX.format(a), unsafe_allow_html=True)
                    right.caption(f"removed: {member.get('id')}")
                    right.markdown(BOX.format(b), unsafe_allow_html=True)
        with contam_tab:
            if not matches:
                st.info("No rows were removed as contaminated in this run.")
            for row in matches[:50]:
                m = row["_match"]
                st.markdown(f"**{row.get('id')}** · {row['reason']} · "
                            f"{m.get('count', '?')} shared {m.get('n', '?')}-grams with item {m.get('item', '?')}")
                st.markdown(BOX.format(explorer.highlight_span(explorer.row_text(row, fields), m.get("span", ""))),
                            unsafe_allow_html=True)
