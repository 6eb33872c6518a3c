"""Generation monitor (distill, prefs, eval): done / total, failures, retries, rates, cost so far and
projected, error kinds, verification pass rate and a sample viewer."""

import streamlit as st

from app import generation, pairs
from app.runs import runs_of_stage
from app.ui import job_panel, page_setup, pick_run, shown_errors
from workbench.runfiles import run_state

root = page_setup("Generation monitor")


def fmt(value, spec: str = ",") -> str:
    return "-" if value is None else format(value, spec)


with shown_errors():
    run = pick_run(root, runs_of_stage(root, "distill", "prefs", "eval"), "Generation run")
    if run is not None:
        state = run_state(run)

        @st.fragment(run_every=2.0 if state.state == "running" else None)
        def numbers() -> None:
            s = generation.stats(run, run_state(run))
            c = st.columns(5)
            c[0].metric("done / total", f"{fmt(s.get('done'))} / {fmt(s.get('total'))}")
            c[1].metric("in flight", fmt(s.get("in_flight")))
            c[2].metric("failed", fmt(s.get("failed")))
            c[3].metric("truncated", fmt(s.get("truncated")))
            c[4].metric("retries", fmt(s.get("retries")))
            c = st.columns(4)
            c[0].metric("units / s", fmt(s.get("rate"), ",.2f"))
            c[1].metric("tokens / min", fmt(s.get("tokens_per_minute"), ",.0f"))
            c[2].metric("cost so far", "-" if s.get("cost_usd") is None else f"${s['cost_usd']:.4f}")
            c[3].metric("projected cost", "-" if s.get("projected_cost_usd") is None else f"${s['projected_cost_usd']:.4f}")
            c = st.columns(4)
            c[0].metric("prefill tokens", fmt(s.get("prefill_tokens")))
            c[1].metric("sampled tokens", fmt(s.get("sampled_tokens")))
            c[2].metric("verification pass rate", "-" if s.get("pass_rate") is None else f"{s['pass_rate']:.1%}",
                        help=f"{fmt(s.get('verified'))} of {fmt(s.get('checked'))} checked answers passed")
            c[3].metric("requests", fmt(s.get("requests")))
            if s.get("cached_requests") or s.get("batch_requests"):  # tokens billed otherwise, shown apart
                c = st.columns(4)
                c[0].metric("cached prefill tokens", fmt(s.get("cached_prefill_tokens")),
                            help="answered by the response cache: not sent, not paid")
                c[1].metric("cached sampled tokens", fmt(s.get("cached_sampled_tokens")))
                c[2].metric("cached requests", fmt(s.get("cached_requests")))
                c[3].metric("batch tokens (in / out)",
                            f"{fmt(s.get('batch_prefill_tokens'))} / {fmt(s.get('batch_sampled_tokens'))}",
                            help="the part of the paid tokens sent through a provider's batch API")
            if s.get("error_kinds"):
                st.markdown("**Error kinds**")
                st.dataframe([{"error": k, "count": v} for k, v in s["error_kinds"].items()], hide_index=True)

        numbers()
        with st.expander("Progress and log", expanded=state.state == "running"):
            job_panel(run, key="gen")
        st.subheader("Samples")
        offset = st.number_input("first sample", min_value=0, value=0, step=10, key="gen_offset")
        rows = generation.samples(run, 10, int(offset))
        if not rows:
            st.caption("samples appear when the run is finished (data.parquet)")
        for row in rows:
            status = row.get("status") or row.get("verdict") or ""
            verdict = {True: ":material/check: verified", False: ":material/close: failed verification", None: ""}.get(row.get("verified"), "")
            with st.expander(f"{row.get('id')} · {status} {verdict}"):
                with st.chat_message("user"):
                    st.text(pairs.prompt_text(row.get("prompt")))
                if row.get("reasoning"):
                    with st.expander("reasoning"):
                        st.text(row["reasoning"])
                with st.chat_message("assistant"):
                    st.text(str(row.get("content") or pairs.side_text(row.get("chosen"))))
                if row.get("rejected") is not None:
                    st.caption("rejected (see the Pairs page for both sides)")
                    st.text(pairs.side_text(row.get("rejected")))
                if row.get("error"):
                    st.error(row["error"])
