"""Settings: the workspace, and named endpoints whose API keys are given as environment variable names."""

import streamlit as st

from app import jobqueue, settings
from app.ui import page_setup, shown_errors
from workbench.errors import InputError

root = page_setup("Settings")
st.markdown(f"**Workspace:** `{root}`")
st.caption("Restart with `wb ui --workspace DIR` to use another one. The app reads and writes only under it.")

with shown_errors():
    current = settings.load(root)
    st.subheader("Job queue")
    limit = st.number_input("Queued jobs running at once", min_value=1, max_value=64, step=1, key="max_jobs",
                            value=jobqueue.max_jobs(root), help="the job queue starts a waiting job when fewer run")
    if limit != jobqueue.max_jobs(root):
        jobqueue.set_max_jobs(root, int(limit))
        current = settings.load(root)
    st.subheader("Endpoints")
    st.caption("Any OpenAI-compatible server (vLLM, an API). For a local one over a model directory, start "
               "`wb serve MODEL_DIR --port 8000` in a terminal and add `http://127.0.0.1:8000/v1` here; the Chat "
               "page can also serve a trained run's model by itself.")
    rows = [{**e, "key": settings.key_status(e.get("api_key_env"))} for e in current["endpoints"]]
    if rows:
        st.dataframe(rows, hide_index=True, key="endpoints")
    else:
        st.caption("none yet")
    with st.form("add_endpoint"):
        c1, c2, c3 = st.columns(3)
        name = c1.text_input("Name", key="ep_name")
        url = c2.text_input("Base URL", placeholder="http://127.0.0.1:8000/v1", key="ep_url")
        env = c3.text_input("API key environment variable", placeholder="OPENAI_API_KEY", key="ep_env",
                            help="the variable's name; the key itself is never stored or shown")
        if st.form_submit_button("Add endpoint"):
            try:
                endpoint = settings.check_endpoint({"name": name, "base_url": url, "api_key_env": env})
                current["endpoints"] = [e for e in current["endpoints"] if e.get("name") != endpoint["name"]] + [endpoint]
                settings.save(root, current)
                st.rerun()
            except InputError as exc:
                st.error(str(exc))
    if current["endpoints"]:
        drop = st.selectbox("Remove endpoint", [e["name"] for e in current["endpoints"]], key="ep_drop")
        if st.button("Remove", key="ep_remove"):
            current["endpoints"] = [e for e in current["endpoints"] if e["name"] != drop]
            settings.save(root, current)
            st.rerun()
