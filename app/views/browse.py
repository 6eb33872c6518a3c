"""Data browser: any run's tables or any data file in the workspace, filtered, sorted and paged lazily;
a histogram of any column's value or length, and removed rows restored into a new run."""

from pathlib import Path

import streamlit as st

from app import search, tables
from app.files import pick_path
from app.runs import list_runs
from app.ui import (
    column_stats,
    count_rows,
    histogram,
    page_rows,
    page_setup,
    pick_run,
    reason_counts,
    shown_errors,
)
from app.workspace import run_name, safe_path
from workbench.runfiles import REMOVED

root = page_setup("Data browser")
PAGE_SIZE = 100


def pick_file() -> Path | None:
    mode = st.radio("Open", ["a run", "a file in the workspace"], horizontal=True, key="browse_mode",
                    index=1 if st.query_params.get("path") else 0)
    if mode == "a file in the workspace":
        st.session_state.setdefault("browse_path", st.query_params.get("path", ""))
        c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
        with c2:
            pick_path("Pick or upload", "browse_pick", ("file",), target="browse_path")
        typed = c1.text_input("File (relative to the workspace)", key="browse_path",
                              help=f"{', '.join(tables.SUFFIXES)} under {root}")
        if not typed:
            return None
        path = safe_path(root, typed)
        st.query_params["path"] = typed
        return path
    st.query_params.pop("path", None)
    run = pick_run(root, [r["name"] for r in list_runs(root)])
    if run is None:
        return None
    files = tables.browsable_files(run)
    if not files:
        st.warning(f"{run_name(root, run)}: no table to browse yet (unfinished, or a run without data files).")
        return None
    names = [f.relative_to(run).as_posix() for f in files]
    wanted = st.query_params.get("file")
    name = st.selectbox("Table", names, index=names.index(wanted) if wanted in names else 0, key="browse_file")
    st.query_params["file"] = name
    return files[names.index(name)]


def filters_ui(path: Path) -> tuple[tuple, tuple]:
    columns = list(tables.schema(path))
    active: list = st.session_state.setdefault("browse_filters", [])
    active[:] = [f for f in active if f.column in columns]
    with st.expander("Filter by column", expanded=bool(active)):
        c1, c2, c3, c4 = st.columns([3, 2, 3, 1])
        column = c1.selectbox("Column", columns, key="flt_col")
        op = c2.selectbox("Operator", tables.OPS, key="flt_op")
        value = c3.text_input("Value", key="flt_val")
        if c4.button("Add", key="flt_add"):
            active.append(tables.Filter(column, op, value))
        for i, f in enumerate(list(active)):
            if st.button(f"{f.column} {f.op} {f.value}", icon=":material/close:", key=f"flt_rm_{i}_{f.column}_{f.op}_{f.value}"):
                active.remove(f)
                st.rerun()
    filters = tuple(active)
    reasons: tuple = ()
    counts = reason_counts(path, filters) if "reason" in columns else []
    if counts:
        labels = {r: f"{r} ({n:,})" for r, n in counts}
        wanted = [r for r in st.query_params.get_all("reason") if r in labels]
        chosen = st.multiselect("Drop reason", list(labels), default=wanted, format_func=labels.get, key="flt_reason",
                                help="rows removed for these reasons (counts over the column filters above)")
        st.query_params["reason"] = chosen
        reasons = tuple(chosen)
    return filters, reasons


def sort_ui(path: Path) -> tables.Sort | None:
    """The whole table's order: a column, what of it to sort by, and the direction."""
    cols = tables.schema(path)
    sortable = [c for c, t in cols.items() if tables.measures_of(t)]
    c1, c2, c3 = st.columns([3, 3, 2])
    column = c1.selectbox("Sort by", ["(file order)", *sortable], key="sort_col",
                          help="sorts the whole filtered table, not one page")
    if column == "(file order)":
        return None
    measure = c2.selectbox("Sort on", tables.measures_of(cols[column]), key="sort_measure",
                           help="the value, or the length in characters (a chat column: every message, or the "
                                "assistant's only)")
    descending = c3.toggle("Largest first", value=True, key="sort_desc")
    return tables.Sort(column, measure, descending)


def histogram_ui(path: Path, filters: tuple, reasons: tuple) -> None:
    import altair as alt

    offered = {c: [m for m in tables.measures_of(t) if m != "value" or t.is_numeric()]
               for c, t in tables.schema(path).items()}
    # numbers first (scores), then texts and chats by length; ids last: their lengths say little
    rank = {c: (c == "id", "value" not in m, c) for c, m in offered.items()}
    offered = {c: offered[c] for c in sorted(offered, key=rank.get) if offered[c]}
    if not offered:
        st.caption("no column with a value or a length to count")
        return
    c1, c2 = st.columns(2)
    column = c1.selectbox("Column", list(offered), key="hist_col")
    measure = c2.selectbox("Measure", offered[column], key="hist_measure")
    frame = histogram(path, column, measure, filters, reasons)
    if frame.height == 0:
        st.caption("no values (every row is null)")
        return
    label = column if measure == "value" else f"{column} ({measure})"
    chart = alt.Chart(frame.to_pandas()).mark_bar().encode(
        x=alt.X("start:Q", bin="binned", title=label), x2="end:Q", y=alt.Y("rows:Q", title="rows"),
        tooltip=["start", "end", "rows"])
    st.altair_chart(chart.properties(height=220), width="stretch")
    st.caption(f"{int(frame['rows'].sum()):,} rows with a value, over the filtered table")


def semantic_ui(path: Path) -> None:
    """The rows nearest in meaning to a query, by an encoder from the workspace (or an embeddings endpoint)."""
    st.session_state.setdefault("sem_encoder", "")
    c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
    with c2:
        pick_path("Pick a model", "sem_pick", ("model",), target="sem_encoder")
    encoder = c1.text_input("Encoder: a model directory (relative to the workspace) or an embeddings endpoint URL",
                            key="sem_encoder", placeholder="models/encoder or http://127.0.0.1:8000/v1")
    c1, c2, c3 = st.columns([5, 2, 1])
    query = c1.text_input("Query", key="sem_query", placeholder="what the rows you want are about")
    encoder_model = c2.text_input("Endpoint model", key="sem_model", help="only for an embeddings endpoint")
    top = c3.number_input("Top", 1, 1000, 20, key="sem_top")
    if encoder and not encoder.startswith(("http://", "https://")):
        encoder = str(safe_path(root, encoder))
    st.caption("runs `wb search` (row embeddings are kept under .wb-ui/search/, so only the first query embeds "
               "the file)")
    if st.button("Search", key="sem_go", disabled=not (query and encoder)):
        with st.spinner("embedding ..."):
            st.session_state["sem_hits"] = (str(path), search.semantic_search(root, path, query, encoder,
                                                                               encoder_model, int(top)))
    shown, hits = st.session_state.get("sem_hits") or ("", [])
    if shown == str(path) and hits:
        st.dataframe(hits, hide_index=True, key="sem_table")
        st.caption("row: the position in the file, as `Show the full row` counts it without filters or sort")


def restore_ui(path: Path, row: dict | None) -> None:
    """Put wrongly removed rows back: a new run of the product plus the chosen removed rows."""
    typed = st.text_input("Ids of removed rows to restore (comma-separated)", value=str((row or {}).get("id") or ""),
                          key="restore_ids")
    out = st.text_input("New run directory (relative to the workspace)", value=f"{path.parent.name}-restored",
                        key="restore_out")
    if st.button("Restore into a new run", key="restore_go"):
        ids = [i.strip() for i in typed.split(",") if i.strip()]
        manifest = tables.restore_rows(path, ids, safe_path(root, out))
        st.success(f"wrote {manifest['rows_out']:,} rows to {out}/data.parquet ({manifest['rows_in']:,} kept by "
                   f"{run_name(root, path.parent)} + {len(ids)} restored)")


def row_panel(row: dict) -> None:
    st.markdown(f"**Row {row.get('_row', '')}** · id `{row.get('id', '-')}`")
    for name, value in row.items():
        if name == "_row":
            continue
        if name in ("messages", "prompt", "chosen", "rejected") and isinstance(value, list) \
                and all(isinstance(m, dict) and "role" in m for m in value):
            st.markdown(f"*{name}*")
            for m in value:
                with st.chat_message(m.get("role") if m.get("role") in ("user", "assistant") else "ai"):
                    st.caption(m.get("role", ""))
                    st.text(str(m.get("content", "")))
        elif name == "reasoning" and value:
            with st.expander("reasoning"):
                st.text(str(value))
        elif isinstance(value, str) and len(value) > 120:
            st.markdown(f"*{name}*")
            st.text(value)
        else:
            st.markdown(f"*{name}*: `{value}`")


with shown_errors():
    path = pick_file()
    if path is not None:
        filters, reasons = filters_ui(path)
        order = sort_ui(path)
        total = count_rows(path, filters, reasons)
        last = tables.last_page(total, PAGE_SIZE)
        page = st.session_state.get("browse_page", 0)
        b1, b2, b3, b4, b5 = st.columns([1, 1, 2, 1, 1])
        if b1.button("First", icon=":material/first_page:", key="pg_first"):
            page = 0
        if b2.button("Prev", icon=":material/chevron_left:", key="pg_prev"):
            page = max(0, page - 1)
        if b4.button("Next", icon=":material/chevron_right:", key="pg_next"):
            page = min(last, page + 1)
        if b5.button("Last", icon=":material/last_page:", key="pg_last"):
            page = last
        page = min(max(0, page), last)
        st.session_state["browse_page"] = page
        b3.markdown(f"page **{page + 1:,}** of {last + 1:,} · **{total:,}** rows")
        frame = page_rows(path, page, PAGE_SIZE, filters, reasons, order)
        event = st.dataframe(frame.to_pandas(), hide_index=True, key="browse_grid", on_select="rerun",
                             selection_mode="single-row")
        shown = None
        if frame.height:
            positions = frame["_row"].to_list()
            clicked = list(getattr(getattr(event, "selection", None), "rows", []) or [])
            pos = st.selectbox("Show the full row (or click a row in the grid)", positions, key="browse_row")
            if clicked and clicked[0] < len(positions):
                pos = positions[clicked[0]]
            with shown_errors():
                shown = tables.full_row(path, pos, filters, reasons, order)
                row_panel({"_row": pos, **shown})
        with st.expander("Semantic search (with an encoder)"), shown_errors():
            semantic_ui(path)
        with st.expander("Histogram of a column"), shown_errors():
            histogram_ui(path, filters, reasons)
        if path.name == REMOVED:
            with st.expander("Restore removed rows into a new run"), shown_errors():
                restore_ui(path, shown)
        with st.expander("Column statistics"):
            if st.toggle("compute over the filtered rows", key="browse_stats"):
                st.dataframe(column_stats(path, filters, reasons).to_pandas(), hide_index=True)
        with st.expander("Save the filtered rows as a new run"):
            out = st.text_input("New run directory (relative to the workspace)", value=f"{path.parent.name}-selected",
                                key="save_name")
            if st.button("Save", key="save_go"):
                with shown_errors():
                    manifest = tables.save_filtered(path, safe_path(root, out), filters, reasons)
                    st.success(f"wrote {manifest['rows_out']:,} rows to {out}/data.parquet")
