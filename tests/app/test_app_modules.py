"""Unit tests of the app's computation modules (no Streamlit): forms, tables, report, curves, explorer,
run state, jobs and path safety."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, field

import polars as pl
import pytest

from app import compare, explorer, forms, jobs, metrics, pairs, report, settings, tables
from app.workspace import safe_path
from tests.net import free_port
from workbench.config import option
from workbench.errors import InputError
from workbench.runfiles import run_state
from workbench.runs import find_run_dirs


def test_forms_build_the_cli_argv_from_changed_values():
    fields = forms.command_fields("dedup")
    by_name = {f.name: f for f in fields}
    assert by_name["sources"].positional and by_name["sources"].many
    assert by_name["verify"].choices == ["jaccard", "signature"]
    assert by_name["threshold"].help.startswith("Jaccard similarity")
    values = forms.default_values(fields) | {"sources": ["a.jsonl", "b dir/x.parquet"], "output": "/w/out",
                                              "threshold": 0.7, "exact": False, "field": ["text"]}
    argv, extra = forms.build_command("dedup", fields, values)
    assert argv == ["dedup", "a.jsonl", "b dir/x.parquet", "--field", "text", "--no-exact", "--threshold", "0.7",
                    "--output", "/w/out"]
    assert extra == {}
    assert jobs.command_line(argv).startswith("wb dedup a.jsonl 'b dir/x.parquet' --field text")


def test_forms_yaml_only_settings_and_subcommands():
    fields = forms.command_fields("curate")
    by_name = {f.name: f for f in fields}
    settings = by_name["filter_settings"]  # nested dataclasses (one per filter) become nested expanders
    assert settings.yaml_only and settings.kind == "nested" and settings.children[0].kind == "nested"
    assert "dedup_settings" not in by_name  # every dedup setting is a flag of `wb curate` already
    values = forms.default_values(fields) | {"sources": ["x.jsonl"], "output": "/o"}
    values["filter_settings"]["length"]["min_words"] = 3
    argv, extra = forms.build_command("curate", fields, values)
    assert argv == ["curate", "x.jsonl", "--output", "/o"]
    assert extra == {"filter_settings": {"length": {"min_words": 3}}}
    values["filter_settings"]["length"]["min_words"] = "abc"
    with pytest.raises(InputError, match="filter_settings.length.min_words': expected an integer"):
        forms.build_command("curate", fields, values)
    sft = {f.name: f for f in forms.command_fields("train sft")}
    assert sft["schedule"].kind == "choice" and sft["lr"].kind == "float"
    run = {f.name: f for f in forms.command_fields("mix run")}
    assert run["plan_dir"].positional and run["workers"].kind == "int"


def test_forms_refuse_missing_inputs_ranges_and_bad_text():
    fields = forms.command_fields("dedup")
    with pytest.raises(InputError, match="sources: required"):
        forms.build_command("dedup", fields, forms.default_values(fields))
    f = forms.Field("threshold", "float", 0.8, flag="--threshold", min=0.0, max=1.0)
    with pytest.raises(InputError, match="--threshold 1.5: must be at most 1.0"):
        forms.check_value(f, 1.5)
    with pytest.raises(InputError, match="finite"):
        forms.check_value(f, float("nan"))
    with pytest.raises(InputError, match="unknown option 'treshold'"):
        forms.from_yaml("treshold: 1", fields)
    with pytest.raises(InputError, match="expected a number"):
        forms.from_yaml("threshold: high", fields)
    lst = forms.Field("ids", "list", [], flag="--ids", item=int)
    assert forms.parse_text(lst, "1 2 3") == [1, 2, 3]
    with pytest.raises(InputError, match="'x' is not an integer"):
        forms.parse_text(lst, "1 x")
    assert forms.format_text(lst, [1, 2]) == "1 2"


@dataclass
class Inner:
    threshold: float = option(0.8, "similarity", min=0.0, max=1.0)
    keep: str = option("first", "policy")


@dataclass
class Outer:
    name: str = option("x", "a name")
    inner: Inner = field(default_factory=Inner, metadata={"help": "inner settings"})


def test_forms_nested_dataclass_becomes_a_yaml_mapping():
    fields = forms._dataclass_fields(Outer, flags={}, yaml_only=True)
    nested = fields[1]
    assert nested.kind == "nested" and [c.name for c in nested.children] == ["threshold", "keep"]
    assert nested.default == {"threshold": 0.8, "keep": "first"}
    with pytest.raises(InputError, match="must be at most 1.0"):
        forms.check_value(nested, {"threshold": 2.0, "keep": "first"})


@pytest.fixture
def big_parquet(tmp_path):
    n = 25_000
    frame = pl.DataFrame({"id": [f"r{i}" for i in range(n)], "text": ["word " * (i % 50) for i in range(n)],
                          "score": [i % 7 for i in range(n)],
                          "reason": ["a" if i % 3 else "b" for i in range(n)]})
    path = tmp_path / "removed.parquet"
    frame.write_parquet(path, row_group_size=1000)
    return path


def test_tables_pages_counts_filters_and_stats(big_parquet):
    assert tables.count_rows(big_parquet) == 25_000
    last = tables.last_page(25_000, 100)
    page = tables.read_page(big_parquet, last, 100)
    assert page["_row"].to_list()[-1] == 24_999 and page.height == 100
    f = (tables.Filter("score", ">=", "5"),)
    assert tables.count_rows(big_parquet, f) == sum(1 for i in range(25_000) if i % 7 >= 5)
    assert tables.reason_counts(big_parquet) == [("a", 16_666), ("b", 8_334)]
    assert tables.count_rows(big_parquet, (), ("b",)) == 8_334
    assert tables.full_row(big_parquet, 1, (), ("b",))["id"] == "r3"
    stats = tables.column_stats(big_parquet).to_dicts()
    score = next(s for s in stats if s["column"] == "score")
    assert (score["min"], score["max"], score["distinct"]) == (0.0, 6.0, 7)
    grid = tables.for_grid(tables.read_page(big_parquet, 0, 60), chars=10)
    assert max(len(t) for t in grid["text"].to_list()) == 10
    with pytest.raises(InputError, match="'1.5x' is not a number"):
        tables.count_rows(big_parquet, (tables.Filter("score", "==", "1.5x"),))
    with pytest.raises(InputError, match="no column 'nope'"):
        tables.count_rows(big_parquet, (tables.Filter("nope", "==", "1"),))


def test_tables_refuse_foreign_and_corrupt_files(tmp_path):
    bad = tmp_path / "x.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="x.parquet"):
        tables.count_rows(bad)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="reads .parquet"):
        tables.scan(tmp_path / "notes.txt")
    with pytest.raises(InputError, match="no such file"):
        tables.scan(tmp_path / "gone.parquet")


def test_report_funnel_orders_steps_and_shares():
    manifest = {"rows_in": 100, "rows_out": 70,
                "dropped": {"length:too_short": 10, "contaminated:gsm8k_test": 5, "exact_duplicate": 10,
                            "near_duplicate": 5},
                "steps": {"length": {"dropped": {"length:too_short": 10}},
                          "decontam": {"dropped": {"contaminated:gsm8k_test": 5}}},
                "dedup": {"lsh": {"bands": 18, "rows": 7}}}
    rows = report.funnel(manifest)
    assert [(r["step"], r["rows_after"]) for r in rows] == [
        ("rows in", 100), ("length", 90), ("decontam", 85), ("exact dedup", 75), ("near dedup", 70), ("kept", 70)]
    assert rows[3]["removed_share_of_step"] == pytest.approx(10 / 85)
    curve = report.lsh_curve(manifest)
    assert curve[0]["p_candidate"] == 0 and curve[-1]["p_candidate"] == 1
    at_08 = next(p for p in curve if p["jaccard"] == pytest.approx(0.8))
    assert at_08["p_candidate"] == pytest.approx(1 - (1 - 0.8 ** 7) ** 18)


def test_metrics_smooth_downsample_and_partial_lines(tmp_path):
    assert metrics.smooth([1.0, 1.0, 1.0], 0.9) == pytest.approx([1.0, 1.0, 1.0])  # debiased: no warm-up dip
    assert metrics.smooth([0.0, 10.0], 0.0) == [0.0, 10.0]
    frame = pl.DataFrame({"step": list(range(1, 10_001)), "loss": [1.0] * 10_000})
    small = metrics.downsample(frame, 500)
    assert small.height <= 501 and small["step"][-1] == 10_000
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.0}\n{"step": 3, "lo')
    read = metrics.read_metrics(tmp_path)
    assert read["loss"].to_list() == [2.0, 1.0]
    long = metrics.curves({"a": read, "b": read}, "loss", 0.0, 10)
    assert long.height == 4 and set(long["run"]) == {"a", "b"}


def test_explorer_diff_jaccard_and_span():
    kept, member = explorer.diff_html("the cat sat on the mat", "the cat sat on a mat <b>")
    assert "<mark>the</mark>" in kept and "<mark>a</mark>" in member and "&lt;b&gt;" in member
    assert explorer.word_jaccard("a b c d e f", "a b c d e f", 5) == 1.0
    assert explorer.word_jaccard("a b c d e f", "a b c d e g", 5) == pytest.approx(1 / 3)
    marked = explorer.highlight_span("He said: The Quick, brown fox! ok", "the quick brown fox")
    assert marked == "He said: <mark>The Quick, brown fox</mark>! ok"


def test_compare_config_diff_and_counts():
    a = {"config": {"dedup": {"threshold": 0.8, "keep": "first"}}, "rows_in": 10, "dropped": {"x": 1}}
    b = {"config": {"dedup": {"threshold": 0.7, "keep": "first"}}, "rows_in": 10, "dropped": {"y": 2}}
    assert compare.config_diff(a, b) == [{"option": "dedup.threshold", "a": 0.8, "b": 0.7}]
    b["inputs"] = [{"path": "/data/x.jsonl", "format": "jsonl"}]
    assert compare.config_diff(a, b)[0] == {"option": "(inputs)", "a": "", "b": "/data/x.jsonl"}
    assert compare.drop_reasons(a, b) == [{"reason": "x", "a": 1, "b": 0}, {"reason": "y", "a": 0, "b": 2}]


def test_pairs_side_text_and_lengths(tmp_path):
    path = tmp_path / "p.parquet"
    pl.DataFrame({"chosen": ["abcd", "ab"], "rejected": ["a", "abc"], "verdict": ["x", "y"]}).write_parquet(path)
    stats = pairs.pair_stats(path)
    assert stats["chosen_longer_share"] == 0.5 and stats["verdicts"] == {"x": 1, "y": 1}
    assert pairs.side_text([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]) == "a"


def test_safe_path_and_run_discovery(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "manifest.json").write_text("{}")
    (tmp_path / "a" / "b" / "model").mkdir()
    (tmp_path / "a" / "b" / "model" / "manifest.json").write_text("{}")
    assert find_run_dirs(tmp_path) == [tmp_path / "a" / "b"]
    assert safe_path(tmp_path, "a/b") == (tmp_path / "a" / "b").resolve()
    for bad in ("../x", "/etc/passwd", "a/../../x"):
        with pytest.raises(InputError, match="outside the workspace"):
            safe_path(tmp_path, bad)
    (tmp_path / "link").symlink_to("/etc")
    with pytest.raises(InputError, match="outside the workspace"):
        safe_path(tmp_path, "link/passwd")


def test_run_state_from_files(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / ".run-incomplete").write_text(json.dumps({"stage": "dedup", "pid": 2 ** 22 + 12345}))
    assert run_state(run).state == "interrupted"  # no such pid
    (run / "progress.json").write_text(json.dumps({"state": "running", "stage": "dedup", "pid": os.getpid(),
                                                   "done": 5, "total": 10, "unit": "rows", "usage": {"requests": 3}}))
    state = run_state(run)
    assert (state.state, state.done, state.total, state.usage["requests"]) == ("running", 5, 10, 3)
    (run / "progress.json").write_text("{half")
    assert run_state(run).state == "unreadable"  # a corrupt file is named, not read as a stopped run
    (run / ".run-incomplete").unlink()
    (run / "manifest.json").write_text(json.dumps({"stage": "dedup", "status": "complete", "rows_in": 3}))
    assert run_state(run).state == "unreadable"  # the corrupt progress file is still named
    (run / "progress.json").unlink()
    assert run_state(run).state == "complete"
    (run / "manifest.json").write_text("[1, 2")
    assert run_state(run).state == "unreadable"  # never raises


def test_settings_refuse_keys_and_bad_urls(tmp_path):
    assert settings.check_endpoint({"name": "a", "base_url": "http://x/v1", "api_key_env": "KEY"})["api_key_env"] == "KEY"
    with pytest.raises(InputError, match="not an environment variable name"):
        settings.check_endpoint({"name": "a", "base_url": "http://x/v1", "api_key_env": "sk-123456789012345678901234"})
    with pytest.raises(InputError, match="http"):
        settings.check_endpoint({"name": "a", "base_url": "ftp://x"})
    (tmp_path / settings.SETTINGS).write_text("endpoints: 3")
    with pytest.raises(InputError, match="expected `endpoints:`"):
        settings.load(tmp_path)



@pytest.mark.slow
def test_jobs_launch_own_session_and_stop_the_group(tmp_path, tiny_model_dir):
    run = tmp_path / "serve-job"
    pid = jobs.launch(["serve", str(tiny_model_dir), "--port", str(free_port())], run)
    try:
        assert os.getpgid(pid) == pid  # its own process group, so stop reaches every child
        deadline = time.monotonic() + 60
        while "Uvicorn" not in jobs.read_log(run) and "127.0.0.1" not in jobs.read_log(run):
            assert time.monotonic() < deadline, jobs.read_log(run)
            time.sleep(0.2)
        assert run_state(run).state == "running"
        with pytest.raises(InputError, match="already running"):
            jobs.launch(["serve", str(tiny_model_dir)], run)
        assert jobs.stop(run, grace_seconds=10) in ("stopped", "killed")
    finally:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while json.loads((run / ".wb-job.json").read_text())["returncode"] is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert run_state(run).state in ("failed", "interrupted")
    assert jobs.stop(run) == "not running"


def test_runs_table_rows_drop_empty_columns():
    from app.runs import table_rows

    rows = [{"name": "a", "stage": "dedup", "state": "running", "phase": None, "done": 5, "total": 10, "cost_usd": None},
            {"name": "b", "stage": "dedup", "state": "complete", "phase": None, "done": None, "total": None,
             "cost_usd": None}]
    shown = table_rows(rows)
    assert shown[0] == {"name": "a", "stage": "dedup", "state": "running", "progress": "5 / 10"}
    assert shown[1]["progress"] is None and "cost_usd" not in shown[1]


def test_generation_stats_while_running_project_the_cost(tmp_path):
    from app import generation
    from workbench.progress import ProgressFile

    run = tmp_path / "distill"
    run.mkdir()
    progress = ProgressFile(run, "distill", unit="units", total=10).start()
    progress.update(done=4, phase="generation", force=True, in_flight=2, failed=1, truncated=1,
                    usage={"requests": 5, "prefill_tokens": 400, "sampled_tokens": 900, "cost_usd": 0.02})
    state = run_state(run)
    assert state.state == "running" and state.extra["in_flight"] == 2
    s = generation.stats(run, state)
    assert (s["done"], s["total"], s["in_flight"], s["failed"], s["truncated"]) == (4, 10, 2, 1, 1)
    assert s["projected_cost_usd"] == pytest.approx(0.05)
    assert s["sampled_tokens"] == 900 and s["pass_rate"] is None


def test_mixture_lab_refuses_a_fit_outside_the_workspace(tmp_path):
    from app import mixture

    run = tmp_path / "ws" / "mix-search"
    run.mkdir(parents=True)
    (run / "mixture.json").write_text(json.dumps({"fit_dir": "/etc", "plan_dir": str(tmp_path / "ws")}))
    with pytest.raises(InputError, match="outside the workspace"):
        mixture.lab(run, tmp_path / "ws")
    with pytest.raises(InputError, match="-0.1 is not between 0 and 1"):
        mixture.search_argv(tmp_path, tmp_path / "o", {"a": -0.1}, {}, 10, 1)


def test_forms_resolve_inputs_against_the_workspace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ws" / "curated").mkdir(parents=True)
    (tmp_path / "here.jsonl").write_text("{}\n")
    fields = forms.command_fields("dedup")
    values = forms.resolve_inputs(fields, {"sources": ["curated", "here.jsonl", "missing.jsonl"]}, tmp_path / "ws")
    assert values["sources"] == [str(tmp_path / "ws" / "curated"), "here.jsonl", "missing.jsonl"]


def test_wb_ui_refuses_bad_arguments_in_one_line(tmp_path, capsys):
    from workbench.cli import main

    assert main(["ui", "--port", "70000"]) == 2
    assert "--port 70000: must be between 1 and 65535" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["ui", "--workspace", str(tmp_path / "file")]) == 2
    assert "exists and is not a directory" in capsys.readouterr().err


def test_wb_ui_binds_localhost_and_runs_the_app():
    from workbench.commands.ui import streamlit_argv

    argv = streamlit_argv("127.0.0.1", 8600)
    assert argv[argv.index("--server.address") + 1] == "127.0.0.1"
    assert argv[4].endswith("app/main.py") and os.path.exists(argv[4])
    for flag in ("--server.enableXsrfProtection", "--server.enableCORS"):  # a config file cannot turn them off
        assert argv[argv.index(flag) + 1] == "true"


def test_every_launchable_config_carries_the_run_options_and_the_form_shows_only_the_flag():
    """`--overwrite` reaches a run through its config, so every command's config is a `RunOptions`; the app's
    form offers it only as the CLI's flag, and never the recorded argv."""
    from evals.config import EvalConfig
    from trainers.tinker_service.server import ServeConfig
    from workbench.config import RunOptions

    for command, row in forms.FORMS.items():
        assert all(issubclass(forms._load(spec), RunOptions) for spec in row.configs), command
        fields = forms.command_fields(command)
        assert "argv" not in [f.name for f in fields], command
        assert all(f.flag == "--overwrite" and not f.yaml_only for f in fields if f.name == "overwrite"), command
    assert "overwrite" in [f.name for f in forms.command_fields("dedup")]
    assert issubclass(EvalConfig, RunOptions) and issubclass(ServeConfig, RunOptions)


def test_the_app_lists_the_state_wb_runs_reads(tmp_path):
    """One reader: a finished run with a live step in it, and a progress file that says complete beside no
    manifest, read the same in the app's Runs page and in `wb runs` (they used to disagree)."""
    from app.runs import list_runs
    from workbench.runs import run_info

    for name, files in {"plan": {"manifest.json": {"stage": "mix-plan"},
                                 "progress.json": {"state": "running", "pid": os.getpid(), "stage": "mix-run"}},
                        "gone": {"progress.json": {"state": "complete", "pid": os.getpid(), "stage": "dedup"}}}.items():
        (tmp_path / name).mkdir()
        for file, content in files.items():
            (tmp_path / name / file).write_text(json.dumps(content))
    rows = {r["name"]: r["state"] for r in list_runs(tmp_path)}
    assert rows == {"plan": "running", "gone": "interrupted"}
    assert {n: run_info(tmp_path / n)["state"] for n in rows} == rows
