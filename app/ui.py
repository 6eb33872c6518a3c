"""Streamlit pieces every page shares: the workspace, errors shown in place, the run picker kept in the
URL (`?run=NAME`), cached table queries and the live job panel. Only this module and `app/views/` import
streamlit."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import streamlit as st

from app import jobs, tables
from app.runs import list_runs
from app.workspace import safe_path, workspace_root
from workbench.errors import WorkbenchError
from workbench.runfiles import run_state


def page_setup(title: str) -> Path:
    """Title the page and return the workspace (stops the page with a message when it is missing)."""
    st.title(title)
    root = workspace_root()
    if not root.is_dir():
        st.error(f"Workspace {root} does not exist; start the app with `wb ui --workspace DIR`.")
        st.stop()
    from app.jobqueue import ensure_launcher

    with shown_errors():
        ensure_launcher(root)  # a restarted app picks up the queue's waiting jobs on its first page view
    return root


@contextlib.contextmanager
def shown_errors() -> Iterator[None]:
    """Turn bad input and unreadable files into a one-line message in place of the failed part."""
    try:
        yield
    except WorkbenchError as exc:
        st.error(str(exc))
    except (OSError, ValueError, KeyError) as exc:
        st.error(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


def pick_run(root: Path, names: list[str], label: str = "Run", key: str = "run") -> Path | None:
    """A select box over `names` whose choice lives in the URL query parameter `key`."""
    if not names:
        st.info("No runs of this kind in the workspace yet.")
        return None
    wanted = st.query_params.get(key)
    if wanted is not None and wanted not in names:
        try:
            safe_path(root, wanted)
            st.warning(f"{wanted}: no such run here; showing another.")
        except WorkbenchError as exc:
            st.error(str(exc))
        wanted = None
    index = names.index(wanted) if wanted in names else 0
    choice = st.selectbox(label, names, index=index, key=f"pick_{key}")
    if st.query_params.get(key) != choice:
        st.query_params[key] = choice
    return safe_path(root, choice)


def all_runs(root: Path) -> list[dict]:
    return list_runs(root)


def _stamp(path: Path) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


@st.cache_data(max_entries=64, show_spinner=False)
def _count(path: str, mtime: float, filters: tuple, reasons: tuple) -> int:
    return tables.count_rows(Path(path), filters, reasons)


@st.cache_data(max_entries=64, show_spinner=False)
def _page(path: str, mtime: float, page: int, size: int, filters: tuple, reasons: tuple, order=None):
    return tables.for_grid(tables.read_page(Path(path), page, size, filters, reasons, order))


@st.cache_data(max_entries=32, show_spinner=False)
def _histogram(path: str, mtime: float, column: str, measure: str, filters: tuple, reasons: tuple):
    return tables.histogram(Path(path), column, measure, filters, reasons)


@st.cache_data(max_entries=32, show_spinner=False)
def _reasons(path: str, mtime: float, filters: tuple) -> list:
    return tables.reason_counts(Path(path), filters)


@st.cache_data(max_entries=16, show_spinner=False)
def _stats(path: str, mtime: float, filters: tuple, reasons: tuple):
    return tables.column_stats(Path(path), filters, reasons)


def count_rows(path: Path, filters: tuple = (), reasons: tuple = ()) -> int:
    return _count(str(path), _stamp(path), filters, reasons)


def page_rows(path: Path, page: int, size: int, filters: tuple = (), reasons: tuple = (), order=None):
    return _page(str(path), _stamp(path), page, size, filters, reasons, order)


def histogram(path: Path, column: str, measure: str, filters: tuple = (), reasons: tuple = ()):
    return _histogram(str(path), _stamp(path), column, measure, filters, reasons)


def reason_counts(path: Path, filters: tuple = ()) -> list:
    return _reasons(str(path), _stamp(path), filters)


def column_stats(path: Path, filters: tuple = (), reasons: tuple = ()):
    return _stats(str(path), _stamp(path), filters, reasons)


def curve_chart(data, height: int = 240) -> None:
    """Lines of (run, step, value), with points so that a curve of one logged value still shows."""
    import altair as alt

    frame = data.to_pandas()
    base = alt.Chart(frame).encode(x=alt.X("step:Q"), y=alt.Y("value:Q", scale=alt.Scale(zero=False)),
                                   color=alt.Color("run:N"), tooltip=["run", "step", "value"])
    few = len(frame) <= 2 * max(1, frame["run"].nunique()) * 20
    layers = base.mark_line() + base.mark_point(size=30, filled=True) if few else base.mark_line()
    st.altair_chart(layers.properties(height=height), width="stretch")


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


NEW_JOB_PAGE = "views/new_job.py"  # relative to app/main.py, as st.navigation names the pages


def open_form(command: str, values: dict, note: str) -> None:
    """Open the New job page with `command`'s form filled from `values` (clone, next steps)."""
    from streamlit.errors import StreamlitAPIException

    st.session_state["_prefill"] = {"cmd": command, "values": values, "note": note}
    try:
        st.switch_page(NEW_JOB_PAGE, query_params={"cmd": command})
    except StreamlitAPIException:  # a page run outside the app's navigation (a test): reload in place
        st.query_params["cmd"] = command
        st.rerun()


def _page_link(page: str, label: str, run: str) -> None:
    """A link to another page with `?run=RUN`; a plain relative link where the page runs outside the app's
    navigation (a test running one page file)."""
    from urllib.parse import urlencode

    from streamlit.errors import StreamlitAPIException

    try:
        st.page_link(f"views/{page}", label=label, icon=":material/open_in_new:", query_params={"run": run})
    except StreamlitAPIException:
        st.markdown(f"[{label}](./{Path(page).stem}?{urlencode({'run': run})})")


def _relaunch(run_dir: Path) -> None:
    try:
        jobs.relaunch(run_dir)
    except WorkbenchError as exc:
        st.session_state["_relaunch_error"] = str(exc)
    st.session_state["_relaunched"] = True


def _job_actions(run_dir: Path, state, key: str) -> None:
    """Resume / Retry failed units / Clone, links to the pages that show the run, and its next steps."""
    from app import forms, outcome
    from app.workspace import run_name, workspace_root

    argv = jobs.recorded_argv(run_dir)
    if jobs.job_alive(run_dir):
        st.caption("its process is exiting…")
        return
    offered = outcome.actions(run_dir, state, bool(argv))
    name = run_name(workspace_root(), run_dir)
    if offered:
        cols = st.columns(len(offered))
        labels = {"resume": ("Resume", "run the same command again on this directory; the CLI continues the run"),
                  "retry": ("Retry failed units", "run the same command again: units that failed are sent again, "
                                                  "finished ones are kept"),
                  "clone": ("Clone into the form", "open the New job form filled with this run's command")}
        for col, action in zip(cols, offered, strict=True):
            label, help_text = labels[action]
            if action == "clone":
                if col.button(label, key=f"{key}_{action}", help=help_text):
                    command, values = forms.values_from_argv(argv or [])
                    open_form(command, values, f"cloned from {name}; choose a new --output")
            else:  # a callback runs once per click (a button in a fragment followed by st.rerun fires twice)
                col.button(label, key=f"{key}_{action}", help=help_text, on_click=_relaunch, args=(run_dir,))
    if state.state != "complete":
        return
    links = outcome.pages(state.stage, run_dir)
    steps = outcome.next_steps(state.stage, name, run_dir)
    if links:
        cols = st.columns(len(links))
        for col, (page, label) in zip(cols, links, strict=True):
            with col:
                _page_link(page, label, name)
    if steps:
        st.caption("Next steps")
        cols = st.columns(len(steps))
        for col, step in zip(cols, steps, strict=True):
            if col.button(step.label, key=f"{key}_next_{step.command}",
                          help=f"opens the `wb {step.command}` form with {', '.join(step.values)} set to this run"):
                open_form(step.command, step.values, f"{step.label.lower()}: {name}")


def job_panel(run_dir: Path, key: str = "job") -> None:
    """State (a failed run with its one-line reason, a finished one with what it kept), progress, usage, log
    tail, a Stop button while it runs, and afterwards Resume / Retry / Clone, links and next steps;
    refreshes every second while the run is unfinished and stops polling once it is finished."""
    from app import outcome

    first = run_state(run_dir)
    # a finished run whose process is still exiting is watched until it is gone (Resume waits for that)
    settled = first.state == "unknown" or (first.finished and not jobs.job_alive(run_dir))
    every = None if settled else 1.0

    @st.fragment(run_every=every)
    def panel() -> None:
        state = run_state(run_dir)
        icon = {"running": ":material/autorenew:", "complete": ":material/check_circle:", "failed": ":material/error:",
                "interrupted": ":material/pause_circle:"}.get(state.state, ":material/help:")
        phase = state.phase if state.state == "running" else None  # a finished run's last phase is stale
        st.markdown(f"**{icon} {state.state}** · `{state.stage or '?'}`" + (f" · {phase}" if phase else ""),
                    help="read from progress.json, manifest.json and the job's launch record in the run directory")
        st.caption(f"state: {state.state}")
        if st.session_state.pop("_relaunched", False):
            st.rerun()  # the whole page: the panel polls again while the relaunched job runs
        if st.session_state.get("_relaunch_error"):
            st.error(st.session_state.pop("_relaunch_error"))
        line = outcome.summary(run_dir, state)
        if line and state.state == "complete":
            st.success(line, icon=":material/check_circle:")
        elif line:
            st.error(line, icon=":material/error:")
            if state.error and outcome.one_line(state.error) != state.error.strip():
                with st.expander("full error"):
                    st.code(state.error, language="text")
        if state.total:
            done = state.done or 0
            live = "" if state.finished else f" · {(state.rate or 0):.1f}/s · ETA {_eta(state.eta_seconds)}"
            st.progress(min(1.0, done / state.total), text=f"{done:,} / {state.total:,} {state.unit or ''}{live}")
        elif state.done is not None and not state.finished:  # a pass whose length is unknown until it ends
            st.caption(f"{state.done:,} {state.unit or ''} so far" + (f" · {state.rate:,.0f}/s" if state.rate else ""))
        usage = {k: v for k, v in state.usage.items() if v}
        if usage:
            st.caption(" · ".join(f"{k.replace('_', ' ')}: {v:,.4g}" if isinstance(v, float) else f"{k.replace('_', ' ')}: {v:,}"
                                  for k, v in usage.items()))
        if state.command:
            st.code(state.command, language="bash")
        log = jobs.read_log(run_dir)
        if log:
            with st.expander("log (wb.log)"):
                st.code(log[-5000:], language="text")
        if not state.finished and state.state == "running":
            if st.button("Stop", key=f"{key}_stop", help="SIGTERM to the job's process group, SIGKILL after 5 s"):
                st.toast(f"{run_dir.name}: {jobs.stop(run_dir)}")
        if state.finished:
            with shown_errors():
                _job_actions(run_dir, state, key)
        if every is not None and state.finished and not jobs.job_alive(run_dir):
            st.rerun()  # the whole page reruns once, and this panel stops polling

    panel()
