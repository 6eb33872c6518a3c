"""New job: a form per command, generated from its parser and config dataclass; shows the exact `wb`
command (with the inputs it found in the workspace), launches it as a subprocess or adds it to the job queue,
and watches it (the run id stays in the URL, so a reload re-attaches). The form keeps its values when you
leave the page and come back; Clone and the next steps of a finished run open it prefilled."""

import time

import streamlit as st

from app import files, forms, jobqueue, jobs, settings
from app.ui import job_panel, page_setup, shown_errors
from app.workspace import run_name, safe_path
from workbench.errors import InputError
from workbench.runfiles import JOB_CONFIG, run_state

root = page_setup("New job")
# The form's values live in `saved`, kept past the page (Streamlit drops a widget's state when its page is
# left): every widget's on_change writes its value there, and each run starts by giving the widgets those
# values back.
SAVED = "_form_saved"
saved: dict = st.session_state.setdefault(SAVED, {})


def remember(key: str) -> None:
    saved[key] = st.session_state[key]


for k, v in saved.items():
    st.session_state[k] = v

attached = st.query_params.get("run")
if attached:
    with shown_errors():
        run_dir = safe_path(root, attached)
        st.subheader(f"Job `{attached}`")
        job_panel(run_dir, key="newjob")
        if st.button("New job", key="detach"):
            del st.query_params["run"]
            st.rerun()
    st.divider()

commands = list(forms.FORMS)
wanted = st.query_params.get("cmd")
if wanted in commands and wanted != st.session_state.get("_cmd_url"):  # a link or a typed URL picks the form
    st.session_state["cmd"] = saved["cmd"] = wanted
if st.session_state.get("cmd") not in commands:
    st.session_state["cmd"] = saved["cmd"] = "dedup"
command = st.selectbox("Command", commands, key="cmd", on_change=remember, args=("cmd",))
st.query_params["cmd"] = st.session_state["_cmd_url"] = saved["cmd"] = command
st.caption(forms.FORMS[command].help)
fields = forms.command_fields(command)
prefix = f"f_{command.replace(' ', '_')}_"


def widget_key(name: str) -> str:
    return prefix + name


def set_widget(f: forms.Field, value: object, key: str) -> None:
    if f.kind in ("bool", "choice") or (f.kind in ("int", "float") and value is not None):
        st.session_state[key] = saved[key] = value
    elif f.kind == "nested":
        for c in f.children:
            set_widget(c, (value or {}).get(c.name, c.default), f"{key}.{c.name}")
    else:
        st.session_state[key] = saved[key] = forms.format_text(f, value)


def load_yaml() -> None:
    try:
        values = forms.from_yaml(st.session_state.get("yaml_in", ""), fields, "the pasted YAML")
    except InputError as exc:
        st.session_state["yaml_error"] = str(exc)
        return
    st.session_state["yaml_error"] = None
    by_name = {f.name: f for f in fields}
    for name, value in values.items():
        set_widget(by_name[name], value, widget_key(name))


def use_endpoint(endpoints: list[dict], url_fields: list[forms.Field]) -> None:
    chosen = next((e for e in endpoints if e["name"] == st.session_state.get("endpoint_pick")), None)
    if chosen is None:
        return
    for f in url_fields:
        value = chosen.get("api_key_env") if f.name == "api_key_env" else [chosen["base_url"]]
        if value:
            set_widget(f, value, widget_key(f.name))


def apply_prefill() -> str | None:
    """Fill the form from a Clone or next-step button (`app.ui.open_form`); return its note."""
    pending = st.session_state.get("_prefill")
    if not pending or pending.get("cmd") != command:
        return None
    del st.session_state["_prefill"]
    by_name = {f.name: f for f in fields}
    for f in fields:  # a clone starts from the defaults, not from what the form held before
        if f.name == "output":  # a new run: the form offers a fresh name
            st.session_state.pop(widget_key(f.name), None)
            saved.pop(widget_key(f.name), None)
            continue
        set_widget(f, pending["values"].get(f.name, f.default), widget_key(f.name))
    unknown = sorted(set(pending["values"]) - set(by_name))
    return pending["note"] + (f" (not in this form: {', '.join(unknown)})" if unknown else "")


def initial(f: forms.Field) -> object:
    """The widget value of the field's default."""
    if f.kind == "bool":
        return bool(f.default)
    if f.kind == "choice":
        return f.default if f.default in (f.choices or []) else (f.choices or [None])[0]
    if f.kind in ("int", "float") and f.default is not None:
        return (int if f.kind == "int" else float)(f.default)
    return forms.format_text(f, f.default)


def field_widget(f: forms.Field, key: str, depth: int = 0) -> object:
    label = f.flag or f.name
    help_text = f.help + (f" (range {f.min} to {f.max})" if f.min is not None or f.max is not None else "")
    if f.kind == "nested":  # an expander of its fields; deeper levels as headed groups (expanders do not nest)
        box = st.expander(f"{f.name} settings (YAML)") if depth == 0 else st.container(border=True)
        with box:
            st.caption(f"**{f.name}**: {f.help}" if depth else f.help)
            return {c.name: field_widget(c, f"{key}.{c.name}", depth + 1) for c in f.children}
    st.session_state.setdefault(key, initial(f))
    keep = {"key": key, "on_change": remember, "args": (key,)}
    if f.kind == "bool":
        return st.checkbox(label, help=help_text, **keep)
    if f.kind == "choice":
        if st.session_state[key] not in (f.choices or []):
            st.session_state[key] = initial(f)
        return st.selectbox(label, list(f.choices or []), help=help_text, **keep)
    if f.kind in ("int", "float") and f.default is not None:
        number = int if f.kind == "int" else float
        kwargs = {"min_value": number(f.min) if f.min is not None else None,
                  "max_value": number(f.max) if f.max is not None else None}
        st.session_state[key] = number(st.session_state[key])
        return st.number_input(label, step=1 if f.kind == "int" else None,
                               format=None if f.kind == "int" else "%g", help=help_text, **keep, **kwargs)
    if f.kind == "dict":
        text = st.text_area(f"{label} (YAML)", help=help_text, **keep)
        return forms.parse_text(f, text)
    text = st.text_input(label + (" (space-separated)" if f.kind == "list" or f.many else ""),
                         help=help_text, **keep)
    value = forms.parse_text(f, text)
    if f.kind in ("int", "float") and value is not None:
        try:
            value = (int if f.kind == "int" else float)(value)
        except ValueError:
            raise InputError(f"{label}: {value!r} is not a number") from None
    return value


note = apply_prefill()
if note:
    st.info(note, icon=":material/content_copy:")
values: dict = {}
with shown_errors():
    inputs = [f for f in fields if f.positional]
    main_options = forms.key_options(fields)
    options = [f for f in fields if not f.positional and not f.yaml_only and f.name != "output"
               and f not in main_options]
    extra = [f for f in fields if f.yaml_only]
    st.markdown("**Inputs**")
    st.caption("Paths as typed (relative to where `wb ui` started), or names of runs and files in the workspace.")
    endpoints = settings.load(root)["endpoints"]
    url_fields = [f for f in fields if f.name.endswith("base_url") or f.name == "api_key_env"]
    if endpoints and url_fields:
        st.selectbox("Fill endpoints from Settings", ["(none)", *[e["name"] for e in endpoints]], key="endpoint_pick",
                     on_change=use_endpoint, args=(endpoints, url_fields),
                     help="sets every *base_url field and --api-key-env from a saved endpoint")
    for f in inputs:
        files.pick_path(f"Pick or upload ({f.name})", f"pick_{prefix}{f.name}", target=widget_key(f.name), append=True,
                        on_pick=remember)
        values[f.name] = field_widget(f, widget_key(f.name))
    has_output = any(f.name == "output" for f in fields)
    if has_output:
        if st.session_state.pop("fresh_output", False):  # the launched run's name is taken: offer a new one
            st.session_state.pop(widget_key("output"), None)
            saved.pop(widget_key("output"), None)
        st.session_state.setdefault(widget_key("output"),
                                    f"jobs/{command.replace(' ', '-')}-{time.strftime('%Y%m%d-%H%M%S')}")
        saved.setdefault(widget_key("output"), st.session_state[widget_key("output")])  # the offered name stays
        out_name = st.text_input("--output (relative to the workspace)", key=widget_key("output"),
                                 on_change=remember, args=(widget_key("output"),),
                                 help=f"the run directory to write, under {root}")
        values["output"] = str(safe_path(root, out_name)) if out_name else ""
    cols = st.columns(2)
    for i, f in enumerate(main_options):
        with cols[i % 2]:
            values[f.name] = field_widget(f, widget_key(f.name))
    with st.expander(f"All other options ({len(options) + len(extra)})", expanded=False):
        cols = st.columns(2)
        for i, f in enumerate(options):
            with cols[i % 2]:
                values[f.name] = field_widget(f, widget_key(f.name))
        for f in extra:
            values[f.name] = field_widget(f, widget_key(f.name))

with st.expander("Load or save settings as YAML"):
    st.text_area("YAML settings", key="yaml_in", help="the same format as `--config x.yaml`")
    st.button("Load into the form", key="yaml_load", on_click=load_yaml)
    if st.session_state.get("yaml_error"):
        st.error(st.session_state["yaml_error"])
    st.download_button("Download these settings", forms.to_yaml(values, fields), file_name=f"{command.replace(' ', '-')}.yaml",
                       key="yaml_save")

typed = values
values = forms.resolve_inputs(fields, values, root)
missing = [f.name for f in inputs if f.required and not values.get(f.name)]
if missing:
    st.info(f"Give {', '.join(missing)} above to see the command.")
    st.stop()


def refuse_taken(run_dir) -> None:
    """A fresh job needs a fresh directory; one holding a run is resumed from that run's panel instead."""
    if not (has_output and run_dir.exists() and any(p for p in run_dir.iterdir() if p.name != JOB_CONFIG)):
        return
    state = run_state(run_dir)
    hint = " (open it on the Runs page and press Resume)" if state.state in ("interrupted", "failed") else ""
    raise InputError(f"{run_name(root, run_dir)}: holds a {state.state} `{state.stage or '?'}` run{hint}; "
                     "choose a new --output")


def write_config(config_path, yaml_values: dict) -> None:
    if config_path:
        import yaml

        from workbench.runfiles import write_atomic

        config_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(config_path, yaml.safe_dump(yaml_values, sort_keys=False))


with shown_errors():
    argv, yaml_values = forms.build_command(command, fields, values)
    run_dir = safe_path(root, values["output"]) if values.get("output") else None
    if run_dir is None:  # commands that write into their input directory (`mix run PLAN_DIR`)
        run_dir = safe_path(root, next(v for f in inputs for v in ([values[f.name]] if not isinstance(values[f.name], list)
                                                                      else values[f.name])))
    config_path = run_dir / JOB_CONFIG if yaml_values else None
    full = argv + (["--config", str(config_path)] if config_path else [])
    st.markdown("**Command**")
    st.code(jobs.command_line(full), language="bash")
    for line in forms.resolution_notes(fields, typed, values):
        st.caption(f":material/subdirectory_arrow_right: {line}")
    launch_col, queue_col = st.columns([1, 4])
    if launch_col.button("Launch", type="primary", key="launch", help="start it now"):
        refuse_taken(run_dir)
        write_config(config_path, yaml_values)
        jobs.launch(full, run_dir)
        st.query_params["run"] = run_name(root, run_dir)
        st.session_state["fresh_output"] = True
        st.rerun()
    if queue_col.button("Add to queue", key="enqueue",
                        help=f"start it when fewer than {jobqueue.max_jobs(root)} queued jobs run (Settings)"):
        refuse_taken(run_dir)
        write_config(config_path, yaml_values)
        entry = jobqueue.enqueue(root, full, run_dir)
        st.session_state["fresh_output"] = True
        st.session_state["_queued_note"] = f"{entry['run']}: added to the queue (see it on the Runs page)"
        st.rerun()
    if st.session_state.get("_queued_note"):
        st.success(st.session_state.pop("_queued_note"), icon=":material/queue:")
