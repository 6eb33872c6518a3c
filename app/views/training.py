"""Training: loss / reward / KL / margin curves from metrics.jsonl, several runs overlaid and smoothed;
progress, ETA and stop for the run being watched."""

import streamlit as st

from app import metrics
from app.runs import runs_of_stage
from app.ui import curve_chart, job_panel, page_setup, shown_errors
from app.workspace import safe_path
from workbench.runfiles import METRICS, run_state

root = page_setup("Training")

with shown_errors():
    names = [n for n in runs_of_stage(root, "train", "sft", "dpo", "grpo", "opd")
             if (safe_path(root, n) / METRICS).exists() or run_state(safe_path(root, n)).state == "running"]
    if not names:
        st.info("No training runs in the workspace yet (runs with a metrics.jsonl).")
        st.stop()
    wanted = [n for n in st.query_params.get_all("run") if n in names] or names[:1]
    chosen = st.multiselect("Runs", names, default=wanted, key="train_runs")
    st.query_params["run"] = chosen
    smoothing = st.slider("Smoothing", 0.0, 0.99, 0.6, 0.01, key="smoothing",
                          help="debiased exponential moving average, as in TensorBoard")
    max_points = st.select_slider("Points per curve", [100, 250, 500, 1000, 2000], value=500, key="max_points")
    any_running = any(run_state(safe_path(root, n)).state == "running" for n in chosen)

    @st.fragment(run_every=2.0 if any_running else None)
    def charts() -> None:
        frames = {n: metrics.read_metrics(safe_path(root, n)) for n in chosen}
        available = list(dict.fromkeys(m for f in frames.values() for m in metrics.metric_names(f)))
        if not available:
            st.info("No metrics logged yet.")
            return
        defaults = [m for m in ("loss", "eval_loss", "rewards/margins", "reward", "kl") if m in available][:3] or available[:1]
        picked = st.multiselect("Metrics", available, default=defaults, key="train_metrics")
        for metric in picked:
            data = metrics.curves(frames, metric, smoothing, max_points)
            st.markdown(f"**{metric}**")
            curve_chart(data)
        last = {n: (int(f["step"].max()) if "step" in f.columns and f.height else 0) for n, f in frames.items()}
        st.caption(" · ".join(f"{n}: step {s}" for n, s in last.items()))

    charts()
    for name in chosen:
        with st.expander(f"{name}: progress", expanded=run_state(safe_path(root, name)).state == "running"):
            job_panel(safe_path(root, name), key=f"train_{name}")
