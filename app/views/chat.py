"""Chat: try a model by hand, one or two side by side. Any endpoint in Settings, or a trained run's model,
which the app serves on demand with `wb serve` on 127.0.0.1 and stops with the Stop button (or when the
app exits). Each message goes to both sides; each side keeps its own conversation."""

from concurrent.futures import ThreadPoolExecutor

import streamlit as st

from app import chat
from app.ui import page_setup, shown_errors

root = page_setup("Chat")
st.caption("Chat with an endpoint from **Settings** or with a trained run's model (served here on demand). To "
           "serve a model yourself: `wb serve MODEL_DIR --port 8000`, then add `http://127.0.0.1:8000/v1` in "
           "Settings.")


def side(column, index: int, target: chat.Target) -> dict | None:
    """The controls of one side; returns {url, model, key} when it can be asked, else None."""
    with column:
        if target.model_dir is not None:
            live = chat.served(root, target.model_dir)
            if live is None:
                st.caption(f"`{target.model_dir.relative_to(root)}` is not served yet")
                if st.button("Start wb serve", key=f"chat_start_{index}", icon=":material/play_arrow:"):
                    with st.spinner("loading the model ..."):
                        chat.start_server(root, target.model_dir)
                    st.rerun()
                return None
            if chat.first_model(live["url"], timeout=2.0) is None:  # alive but still loading the model
                with st.spinner("loading the model ..."):
                    live = chat.wait_ready(root, target.model_dir)
            st.caption(f"served at {live['url']} (pid {live['pid']}, started by this app)")
            if st.button("Stop", key=f"chat_stop_{index}", icon=":material/stop:"):
                st.toast(chat.stop_server(root, target.model_dir))
                st.rerun()
            return {"url": live["url"], "model": live["model"], "key": None}
        guess = st.session_state.get(f"chat_guess_{target.label}")
        if guess is None:
            guess = chat.first_model(target.base_url, target.api_key_env) or ""
            st.session_state[f"chat_guess_{target.label}"] = guess
        model = st.text_input("Model id", value=guess, key=f"chat_model_{index}_{target.label}",
                              help="the name the endpoint knows the model by (its /models list gives the first)")
        st.caption(f"{target.base_url}")
        return {"url": target.base_url, "model": model, "key": target.api_key_env} if model else None


with shown_errors():
    options = chat.targets(root)
    if not options:
        st.info("Nothing to chat with yet: add an endpoint in Settings, or train a model (`wb train sft`).")
        st.stop()
    labels = [t.label for t in options]
    c1, c2, c3 = st.columns([3, 3, 2])
    a = c1.selectbox("Model A", labels, key="chat_a")
    b = c2.selectbox("Model B (side by side)", ["(none)", *labels], key="chat_b")
    with c3.popover("Sampling"):
        max_tokens = st.number_input("max tokens", 1, 8192, 256, key="chat_max_tokens")
        temperature = st.slider("temperature", 0.0, 2.0, 0.7, 0.05, key="chat_temperature")
    chosen = [options[labels.index(a)]] + ([options[labels.index(b)]] if b != "(none)" else [])
    columns = st.columns(len(chosen))
    sides: list[dict | None] = []
    for i, (column, target) in enumerate(zip(columns, chosen, strict=True)):
        ready = None
        with shown_errors():
            ready = side(column, i, target)
        sides.append(ready)
    histories = st.session_state.setdefault("chat_history", {})
    keys = [f"{i}:{t.label}" for i, t in enumerate(chosen)]
    prompt = st.chat_input("Message both models" if len(chosen) > 1 else "Message the model", key="chat_input")
    if any(histories.values()) and st.button("Clear the conversation", key="chat_clear"):
        histories.clear()
    asked = {}
    if prompt:  # both sides at once: a slow model does not hold up the other
        with st.spinner("asking ..."), ThreadPoolExecutor(max_workers=len(chosen)) as pool:
            asked = {k: pool.submit(chat.ask, r["url"], r["model"],
                                    [*histories.get(k, []), {"role": "user", "content": prompt}], r["key"],
                                    int(max_tokens), temperature)
                     for k, r in zip(keys, sides, strict=True) if r is not None}
    for key, column in zip(keys, columns, strict=True):
        history = histories.setdefault(key, [])
        with column:
            if key in asked:
                with shown_errors():  # a failed request is shown and its turn not kept
                    reply = asked[key].result()
                    history += [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}]
            elif prompt:
                st.warning("start the server (or give a model id) first")
            for m in history:
                with st.chat_message(m["role"]):
                    if m["content"]:
                        st.text(m["content"])
                    else:
                        st.caption("(an empty reply: the model stopped at once)")
