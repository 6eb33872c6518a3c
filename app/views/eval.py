"""Evaluations: every `wb eval` run of the workspace as benchmarks by stage (a table and a chart with 95%
intervals), one run's per-item results with the model's answer and the verifier's verdict, and the paired
comparison of runs that `wb eval --compare` prints."""

import os

import streamlit as st

from app import evals
from app.ui import page_setup, shown_errors
from app.workspace import safe_path

root = page_setup("Evaluations")


@st.cache_data(max_entries=16, show_spinner="running wb eval --compare ...")
def compared(names: tuple[str, ...], stamps: tuple[float, ...]) -> str:
    return evals.run_compare(root, list(names))


def stage_chart(table) -> None:
    import altair as alt

    frame = table.to_pandas()
    # the runs' common folder ("demo/") says nothing on the axis; horizontal labels keep the plot tall
    runs = list(dict.fromkeys(frame["run"]))
    folder = os.path.commonpath(runs) if len(runs) > 1 and all("/" in r for r in runs) else ""
    folder = "" if folder in runs else folder
    frame["label"] = [r[len(folder) + 1:] if folder else r for r in frame["run"]]
    order = list(dict.fromkeys(frame["label"]))
    x = alt.X("label:N", sort=order, title=f"run{' in ' + folder + '/' if folder else ''}, in the order they ran",
              axis=alt.Axis(labelAngle=0, labelLimit=180))
    base = alt.Chart(frame).encode(x=x, color=alt.Color("benchmark:N"))
    points = base.mark_point(filled=True, size=80).encode(
        y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), title="accuracy"),
        tooltip=["run", "model", "benchmark", "accuracy", "ci_low", "ci_high", "items"])
    bars = base.mark_rule(strokeWidth=3, opacity=0.6).encode(y="ci_low:Q", y2="ci_high:Q")
    st.altair_chart((bars + points + base.mark_line(opacity=0.4).encode(y="accuracy:Q")).properties(height=280),
                    width="stretch")


with shown_errors():
    names = evals.eval_runs(root)
    if not names:
        st.info("No finished `wb eval` runs in this workspace yet. Score a model with `wb eval --model M --benchmark "
                "gsm8k --output runs/eval-x` (or the New job page, command `eval`); `make demo` writes one per stage.")
        st.stop()
    chosen = st.multiselect("Runs (stages)", names, default=[n for n in st.query_params.get_all("runs") if n in names] or names, key="ev_runs",
                            help="each run is one model scored on its benchmarks; they are listed in the order they ran")
    st.query_params["runs"] = chosen
    table = evals.benchmark_table(root, [n for n in names if n in chosen])
    st.subheader("Benchmarks by stage")
    if table.height:
        st.dataframe(table.drop("stage").to_pandas(), hide_index=True, key="ev_table",
                     column_config={c: st.column_config.NumberColumn(format="%.3f")
                                    for c in ("accuracy", "ci_low", "ci_high", "pass@k", "maj@k", "truncated")})
        stage_chart(table)
        st.caption("points: accuracy; bars: 95% interval (Wilson for one sample per item, else a bootstrap over items)")

    st.subheader("Per-item results")
    c1, c2, c3 = st.columns([3, 2, 2])
    run = c1.selectbox("Run", names, index=len(names) - 1, key="ev_item_run")
    benches = sorted(evals.benchmark_table(root, [run])["benchmark"].to_list())
    bench = c2.selectbox("Benchmark", benches, key="ev_item_bench") if benches else None
    verdict = c3.selectbox("Show", evals.VERDICTS, key="ev_item_verdict")
    items = evals.item_results(safe_path(root, run), bench, verdict)
    st.caption(f"{items.height:,} samples shown (at most 500); the verdict is the verifier's on the extracted answer")
    st.dataframe(items.to_pandas(), hide_index=True, key="ev_items")

    st.subheader("Compare runs (paired)")
    if len(names) < 2:
        st.caption("needs two eval runs")
    else:
        default = [n for n in st.query_params.get_all("cmp") if n in names] or names[-2:]
        pair = st.multiselect("Baseline first, then the runs to compare with it", names, default=default,
                              key="ev_cmp", max_selections=4)
        st.query_params["cmp"] = pair
        st.code(f"cd {root} && " + " ".join(evals.compare_argv(pair)), language="bash")
        if len(pair) >= 2 and st.button("Compare", key="ev_cmp_go"):
            stamps = tuple(safe_path(root, n).joinpath("manifest.json").stat().st_mtime for n in pair)
            st.session_state["ev_cmp_out"] = compared(tuple(pair), stamps)
        if st.session_state.get("ev_cmp_out"):
            st.code(st.session_state["ev_cmp_out"], language="text")
            st.caption("each run against the baseline on the items both scored: the difference in points, its 95% "
                       "paired-bootstrap interval and p; 'exceeds noise' when the interval excludes zero")
