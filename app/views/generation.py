"""Generation monitor (distill, prefs, eval): done / total, failures, retries, rates, cost so far and
projected, error kinds and the full error messages, verification pass rate, and a sample viewer filtered by
status that shows units as they finish."""

import streamlit as st

from app import generation, pairs
from app.runs import runs_of_stage
from app.ui import job_panel, page_setup, pick_run, shown_errors
from workbench.runfiles import PRODUCT, run_state

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
        st.subheader("Errors")
        messages = generation.error_messages(run)
        if messages:
            for m in messages:
                st.error(f"{m['count']:,} × {m['error']}")
        else:
            st.caption("no failed units")

        @st.fragment(run_every=2.0 if state.state == "running" else None)
        def sample_viewer() -> None:
            st.subheader("Samples")
            c1, c2 = st.columns([1, 3])
            status = c1.selectbox("status", ["all", *generation.STATUSES], key="gen_status")
            offset = c2.number_input("first sample", min_value=0, value=0, step=10, key="gen_offset")
            rows = generation.samples(run, 10, int(offset), None if status == "all" else status)
            if not rows:
                st.caption("no samples with this status yet" if status != "all" else "no finished units yet")
            elif not (run / PRODUCT).exists():
                st.caption("units finished so far, newest first (the prompts show once the run is finished)")
            for row in rows:
                status_of = row.get("status") or row.get("verdict") or ""
                verdict = {True: ":material/check: verified", False: ":material/close: failed verification", None: ""}.get(row.get("verified"), "")
                with st.expander(f"{row.get('id')} · {status_of} {verdict}", expanded=bool(row.get("error"))):
                    if row.get("prompt") is not None:
                        with st.chat_message("user"):
                            st.text(pairs.prompt_text(row.get("prompt")))
                    if row.get("reasoning"):
                        with st.expander("reasoning"):
                            st.text(row["reasoning"])
                    answer = row.get("content") or pairs.side_text(row.get("chosen"))
                    if answer:
                        with st.chat_message("assistant"):
                            st.text(str(answer))
                    if row.get("rejected") is not None:
                        st.caption("rejected (see the Pairs page for both sides)")
                        st.text(pairs.side_text(row.get("rejected")))
                    if row.get("error"):
                        st.error(row["error"])  # the whole message, not only its kind

        sample_viewer()
