"""Runs: every run in the workspace with its live state, the job queue (waiting, running, done; cancel one);
pick a run to watch (Resume, Retry failed units, Clone, next steps), or two to compare."""

import polars as pl
import streamlit as st

from app import compare, jobqueue, metrics
from app.runs import list_runs, table_rows
from app.ui import curve_chart, job_panel, page_setup, pick_run, shown_errors
from app.workspace import safe_path
from workbench.runfiles import MANIFEST, read_json

root = page_setup("Runs")
rows = list_runs(root)
running = any(r["state"] == "running" for r in rows)


@st.fragment(run_every=2.0 if running else None)
def runs_table() -> None:
    current = list_runs(root)
    if not current:
        st.info(f"No runs under {root} yet. Start one on the New job page, or run `wb demo --output {root}/demo`.")
        return
    st.dataframe(pl.DataFrame(table_rows(current)), hide_index=True, key="runs_table",
                 column_config={"cost_usd": st.column_config.NumberColumn(format="$%.4f"),
                                "wall_seconds": st.column_config.NumberColumn("wall s", format="%.1f")})


runs_table()


def cancel_picked() -> None:  # a callback: runs once per click, before the fragment reruns
    st.session_state["_queue_note"] = jobqueue.cancel(root, st.session_state["queue_pick"])


@st.fragment(run_every=2.0 if jobqueue.ensure_launcher(root) else None)
def queue_panel() -> None:
    queue = jobqueue.rows(root)
    if not queue:
        return
    st.subheader("Job queue")
    waiting = sum(r["status"] == "queued" for r in queue)
    running_now = sum(r["status"] == "running" for r in queue)
    st.caption(f"{waiting} queued · {running_now} running · at most {jobqueue.max_jobs(root)} at once "
               "(Settings) · jobs wait in .wb-queue.json, so they survive an app restart")
    st.dataframe(pl.DataFrame([{k: r[k] for k in ("position", "run", "status", "command", "added_at", "error")}
                               for r in queue]), hide_index=True, key="queue_table")
    active = [r for r in queue if r["status"] in ("queued", "running")]
    c1, c2, c3 = st.columns([3, 1, 1])
    if active:
        labels = {r["id"]: f"{r['run']} ({r['status']})" for r in active}
        c1.selectbox("Job", list(labels), format_func=labels.get, key="queue_pick", label_visibility="collapsed")
        c2.button("Cancel", key="queue_cancel", help="drop a waiting job; stop a running one (SIGTERM)",
                  on_click=cancel_picked)
    if st.session_state.get("_queue_note"):
        st.caption(st.session_state.pop("_queue_note"))
    if len(active) < len(queue):
        c3.button("Clear finished", key="queue_clear", on_click=lambda: jobqueue.clear_finished(root))


with shown_errors():
    queue_panel()
names = [r["name"] for r in rows]
if names:
    st.subheader("Watch a run")
    with shown_errors():
        chosen = pick_run(root, names)
        if chosen is not None:
            job_panel(chosen)

    st.subheader("Compare two runs")
    left, right = st.columns(2)
    a = left.selectbox("Run A", names, index=0, key="cmp_a")
    stage_of = {r["name"]: r["stage"] for r in rows}
    same = [n for n in names if n != a and stage_of.get(n) == stage_of.get(a)]  # compare like with like first
    others = [n for n in names if n != a]
    b = right.selectbox("Run B", others or names, index=(others or names).index(same[0]) if same else 0, key="cmp_b")
    state_of = {r["name"]: r["state"] for r in rows}
    with shown_errors():
        pa, pb = safe_path(root, a), safe_path(root, b)
        unfinished = [n for n in (a, b) if state_of.get(n) != "complete"]
        if unfinished:  # only a complete run's manifest is known to be whole (an unreadable one is not)
            st.warning(f"{unfinished[0]}: {state_of.get(unfinished[0])}, not a finished run; nothing to compare yet.")
        else:
            ma, mb = read_json(pa / MANIFEST) or {}, read_json(pb / MANIFEST) or {}
            st.markdown("**Config differences**")
            diff = compare.config_diff(ma, mb)
            if diff:
                st.dataframe(pl.DataFrame([{k: str(v) for k, v in d.items()} for d in diff]), hide_index=True)
            else:
                st.caption("same config")
            c1, c2 = st.columns(2)
            c1.markdown("**Rows and usage**")
            c1.dataframe(pl.DataFrame([{k: (None if v is None else str(v)) for k, v in r.items()}
                                       for r in compare.counts(ma, mb)]), hide_index=True)
            c2.markdown("**Drop reasons**")
            reasons = compare.drop_reasons(ma, mb)
            if reasons:
                c2.dataframe(pl.DataFrame(reasons), hide_index=True)
            else:
                c2.caption("no rows dropped in either run")
            accuracy = compare.eval_accuracy(ma, mb)
            if accuracy:
                st.markdown("**Accuracy** (both are eval runs; the Evaluations page has the paired interval)")
                st.dataframe(pl.DataFrame(accuracy), hide_index=True, key="cmp_accuracy")
            ids = compare.id_diff(pa, pb)
            if ids is not None:
                st.markdown(f"**Rows by id**: {ids['added']:,} in B but not in A, {ids['removed']:,} in A but not in B")
                if ids["added_ids"] or ids["removed_ids"]:
                    st.caption(f"added: {', '.join(ids['added_ids'][:10])}  ·  removed: {', '.join(ids['removed_ids'][:10])}")
            frames = {a: metrics.read_metrics(pa), b: metrics.read_metrics(pb)}
            common = [m for m in metrics.metric_names(frames[a]) if m in frames[b].columns]
            if common:
                metric = st.selectbox("Metric overlay", common, key="cmp_metric")
                curve = metrics.curves(frames, metric)
                curve_chart(curve)
