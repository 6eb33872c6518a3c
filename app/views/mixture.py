"""Mixture lab: a proxy sweep live (proxies as they finish, the quick fit's rank correlation growing with them),
proxy runs, predicted vs actual with the cross-validated rank correlation, chosen vs natural vs uniform
weights, the Pareto front; change the constraints and search again (a `wb mix search` job)."""

import time

import altair as alt
import streamlit as st

from app import jobs, mixture
from app.runs import runs_of_stage
from app.ui import job_panel, page_setup, pick_run, shown_errors
from app.workspace import run_name, safe_path

root = page_setup("Mixture lab")


def sweep_section() -> None:
    """The chosen plan's sweep, refreshed every 2 s while `wb mix run` works on it."""
    plan = pick_run(root, runs_of_stage(root, "mix-plan"), "Proxy sweep (plan)", key="plan")
    if plan is None:
        return

    @st.fragment(run_every=2.0 if mixture.sweep(plan)["state"] == "running" else None)
    def live() -> None:
        s = mixture.sweep(plan)
        curve = s["curve"]
        c = st.columns(4)
        c[0].metric("proxies finished", f"{s['finished']} / {s['planned'] if s['planned'] is not None else '?'}")
        c[1].metric("sweep", s["state"] or "not run yet",
                    help=f"about {s['eta_seconds']:.0f} s left" if s["eta_seconds"] else None)
        c[2].metric("failed proxies", s["failed"])
        c[3].metric("quick-fit LightGBM rank corr.", f"{s['rank_corr']:+.3f}" if s["rank_corr"] is not None else "-",
                    help="4-fold cross-validated Spearman of a quick fit of the finished proxies "
                         "(fit_curve.json); `wb mix fit` gives the final word")
        if curve.height:
            st.altair_chart(alt.Chart(curve.to_pandas()).mark_line(point=True).encode(
                x=alt.X("proxies:Q", title="finished proxies"), y=alt.Y("spearman:Q", title="CV rank correlation"),
                color="regressor:N", tooltip=["proxies", "regressor", "spearman"]), width="stretch")
        else:
            st.caption("the fit's rank correlation appears once 8 proxies have finished")
        if s["results"] is not None:
            st.dataframe(s["results"].head(200).to_pandas(), hide_index=True)

    live()


with shown_errors():
    with st.expander("Proxy sweep, live", expanded=True):
        sweep_section()

    run = pick_run(root, runs_of_stage(root, "mix-search"), "Mixture search run")
    if run is not None:
        lab = mixture.lab(run, root)
        fit, mix = lab["fit"], lab["mixture"]
        better = fit.get("better")
        cv = fit.get("cv") or {}
        c = st.columns(3)
        c[0].metric("proxy runs", f"{fit.get('runs', '-')}")
        for i, model in enumerate(("lightgbm", "linear")):
            if model in cv:
                c[i + 1].metric(f"{model} CV Spearman" + (" (used)" if model == better else ""),
                                f"{cv[model]['spearman']:+.3f}", help=f"{fit.get('folds')}-fold cross-validated rank "
                                f"correlation of predicted and actual objective; MAE {cv[model]['mae']:.3f}")
        st.caption("targets: " + ", ".join(f"{t} (weight {v.get('weight')})" for t, v in (mix.get("targets") or {}).items()))
        left, right = st.columns(2)
        with left:
            st.markdown("**Weights: chosen vs natural vs uniform**")
            st.altair_chart(alt.Chart(lab["weights"].to_pandas()).mark_bar().encode(
                x=alt.X("weight:Q"), y=alt.Y("mixture:N", title=None), color="domain:N",
                tooltip=["mixture", "domain", "weight"]), width="stretch")
            st.caption(f"predicted objective (lower is better): chosen {mix.get('predicted_objective', float('nan')):.3f}, "
                       f"natural {mix.get('predicted_natural', float('nan')):.3f}, "
                       f"uniform {mix.get('predicted_uniform', float('nan')):.3f}")
        with right:
            preds = lab["predictions"]
            if preds is not None and "objective" in preds.columns:
                st.markdown("**Predicted vs actual (cross-validated)**")
                column = f"pred_{better}" if f"pred_{better}" in preds.columns else preds.columns[-1]
                st.altair_chart(alt.Chart(preds.to_pandas()).mark_circle(size=60).encode(
                    x=alt.X("objective:Q", title="actual objective"), y=alt.Y(f"{column}:Q", title=f"predicted ({better})"),
                    tooltip=["run_id", "objective", column]), width="stretch")
        if lab["results"] is not None:
            with st.expander(f"Proxy runs ({lab['results'].height})"):
                st.dataframe(lab["results"].to_pandas(), hide_index=True)
        if lab["pareto"] is not None:
            st.markdown(f"**Pareto front** ({lab['pareto'].height} mixtures)")
            st.dataframe(lab["pareto"].to_pandas(), hide_index=True)
        else:
            st.caption("no Pareto front: this search had one target (give several `--target`s to `wb mix fit`)")

        st.subheader("Change constraints and search again")
        domains = list((mix.get("weights") or {}).keys())
        bounds = {}
        for d in domains:
            bounds[d] = st.slider(f"{d} weight range", 0.0, 1.0, (0.0, 1.0), 0.01, key=f"bound_{d}")
        c1, c2 = st.columns(2)
        samples = c1.number_input("samples", 1000, 10_000_000, int(mix.get("samples") or 100_000), key="mix_samples")
        top_k = c2.number_input("top k", 1, 10_000, int(mix.get("top_k") or 100), key="mix_topk")
        out = f"{run_name(root, run)}-{time.strftime('%H%M%S')}"
        argv = mixture.search_argv(lab["fit_dir"], safe_path(root, out),
                                   {d: lo for d, (lo, hi) in bounds.items() if lo > 0},
                                   {d: hi for d, (lo, hi) in bounds.items() if hi < 1}, int(samples), int(top_k))
        st.code(jobs.command_line(argv), language="bash")
        if st.button("Search again", key="mix_go"):
            jobs.launch(argv, safe_path(root, out))
            st.session_state["mix_job"] = out
        if st.session_state.get("mix_job"):
            job_panel(safe_path(root, st.session_state["mix_job"]), key="mix")
