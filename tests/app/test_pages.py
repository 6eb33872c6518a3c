"""AppTest tests: every page over a workspace of real runs (made by the CLI in conftest.py)."""

from __future__ import annotations

import json
import shutil

import pytest
from apptest import no_exception, open_page, texts, wait_for


def test_runs_lists_every_run_and_compares_two(workspace, monkeypatch):
    at = open_page("runs", workspace, monkeypatch)
    no_exception(at)
    table = at.dataframe[0].value
    assert set(table["name"]) == {"cur", "dd", "distill", "prefs", "pairs", "sft", "sft-short"}
    assert set(table["state"]) == {"complete"}
    dd = table[table["name"] == "dd"].iloc[0]
    assert (dd["rows_in"], dd["rows_out"]) == (62, 60)
    at.selectbox(key="cmp_a").set_value("sft-short")
    at.selectbox(key="cmp_b").set_value("sft")
    at.run()
    no_exception(at)
    diff = at.dataframe[1].value  # config differences: max_steps 2 vs 4 (and the output directory)
    row = diff[diff["option"] == "max_steps"].iloc[0]
    assert (row["a"], row["b"]) == ("2", "4")
    assert "Metric overlay" in [s.label for s in at.selectbox]


def test_runs_compare_shows_rows_added_and_removed_by_id(workspace, monkeypatch):
    at = open_page("runs", workspace, monkeypatch)
    at.selectbox(key="cmp_a").set_value("dd")
    at.selectbox(key="cmp_b").set_value("cur")
    at.run()
    shown = texts(at)
    assert "39 in B but not in A, 60 in A but not in B" in shown  # no ids in common


def test_browser_filters_removed_rows_by_reason(workspace, monkeypatch):
    at = open_page("browse", workspace, monkeypatch, run="cur", file="removed.parquet")
    no_exception(at)
    reasons = at.multiselect(key="flt_reason")
    assert reasons.options == ["contaminated:gsm8k_test (2)", "exact_duplicate (1)"]
    assert "**3** rows" in texts(at)
    reasons.select("exact_duplicate").run()
    assert "**1** rows" in texts(at)
    assert list(at.dataframe[0].value["id"]) == ["copy-q0"]
    assert at.query_params["reason"] == "exact_duplicate"


def test_browser_column_filter_paging_and_full_row(workspace, monkeypatch):
    at = open_page("browse", workspace, monkeypatch, run="dd", file="data.parquet")
    assert "page **1** of 1 · **60** rows" in texts(at)
    at.selectbox(key="flt_col").set_value("id")
    at.selectbox(key="flt_op").set_value("==")
    at.text_input(key="flt_val").input("r7")
    at.button(key="flt_add").click().run()
    no_exception(at)
    assert "**1** rows" in texts(at)
    assert list(at.dataframe[0].value["id"]) == ["r7"]
    assert "id `r7`" in texts(at)


def test_browser_pages_through_a_file_and_renders_messages(workspace, monkeypatch):
    at = open_page("browse", workspace, monkeypatch, run="pairs")
    no_exception(at)
    assert "**6** rows" in texts(at)
    assert len(at.chat_message) >= 2  # the prompt and the chosen answer rendered as a conversation
    at.button(key="pg_last").click().run()
    assert "page **1** of 1" in texts(at)


def test_browser_refuses_a_path_outside_the_workspace(workspace, monkeypatch):
    at = open_page("browse", workspace, monkeypatch, path="../../../etc/passwd")
    no_exception(at)
    assert any("outside the workspace" in e.value for e in at.error)


def test_browser_saves_filtered_rows_as_a_new_run(workspace, tmp_path, monkeypatch):
    root = tmp_path / "ws"
    shutil.copytree(workspace / "cur", root / "cur")
    at = open_page("browse", root, monkeypatch, run="cur", file="removed.parquet", reason="contaminated:gsm8k_test")
    at.text_input(key="save_name").input("leaks")
    at.button(key="save_go").click().run()
    no_exception(at)
    manifest = json.loads((root / "leaks" / "manifest.json").read_text())
    assert (manifest["stage"], manifest["rows_in"], manifest["rows_out"]) == ("select", 3, 2)
    assert manifest["config"]["reasons"] == ["contaminated:gsm8k_test"]


def test_browser_shows_column_statistics(workspace, monkeypatch):
    at = open_page("browse", workspace, monkeypatch, run="dd", file="removed.parquet")
    at.toggle(key="browse_stats").set_value(True).run()
    stats = at.dataframe[-1].value
    sim = stats[stats["column"] == "similarity"].iloc[0]
    assert sim["min"] == pytest.approx(0.963, abs=1e-3) and sim["max"] == 1.0


def test_report_funnel_counts(workspace, monkeypatch):
    at = open_page("report", workspace, monkeypatch, run="cur")
    no_exception(at)
    assert [m.value for m in at.metric] == ["42", "39", "3"]
    funnel = at.dataframe[0].value.set_index("step")
    assert funnel.loc["decontam", "removed"] == 2
    assert funnel.loc["exact dedup", "removed"] == 1
    assert funnel.loc["kept", "rows_after"] == 39
    assert "LSH detection curve (18 bands × 7 rows)" in texts(at)
    assert "[open all 2 in the data browser]" in texts(at)


def test_report_of_an_unfinished_run_is_one_line(workspace, tmp_path, monkeypatch):
    root = tmp_path / "ws"
    shutil.copytree(workspace / "dd", root / "dd")
    (root / "dd" / "manifest.json").write_text("{not json")
    at = open_page("report", root, monkeypatch, run="dd")
    no_exception(at)
    assert len(at.warning) + len(at.info) + len(at.error) == 1  # a corrupt manifest: one message, not a trace
    assert [e.value for e in at.error] == [f"{(root / 'dd' / 'manifest.json').resolve()}: not valid JSON (Expecting "
                                           "property name enclosed in double quotes)"]
    at = open_page("runs", root, monkeypatch)
    no_exception(at)
    assert list(at.dataframe[0].value["state"]) == ["unreadable"]


def test_new_job_form_yaml_and_launch_to_complete(workspace, small_jsonl, tmp_path, monkeypatch):
    root = tmp_path / "ws"
    root.mkdir()
    at = open_page("new_job", root, monkeypatch, cmd="dedup")
    no_exception(at)
    assert "Give sources above" in texts(at)
    at.text_input(key="f_dedup_sources").input(str(small_jsonl))
    at.text_input(key="f_dedup_output").input("jobs/dd")
    at.text_area(key="yaml_in").input("threshold: 0.7\nkeep: longest\n")
    at.button(key="yaml_load").click().run()
    no_exception(at)
    command = at.code[-1].value
    assert command == f"wb dedup {small_jsonl} --threshold 0.7 --keep longest --output {root / 'jobs' / 'dd'}"
    at.button(key="launch").click().run()
    assert at.query_params["run"] == "jobs/dd"
    wait_for(at, "state: complete")
    manifest = json.loads((root / "jobs" / "dd" / "manifest.json").read_text())
    assert (manifest["rows_in"], manifest["rows_out"]) == (62, 60)
    assert manifest["config"]["keep"] == "longest"
    assert "62 rows in, 60 kept" in (root / "jobs" / "dd" / "wb.log").read_text()


def test_new_job_bad_yaml_key_is_one_line(workspace, monkeypatch):
    at = open_page("new_job", workspace, monkeypatch, cmd="dedup")
    at.text_area(key="yaml_in").input("treshold: 0.7\n")
    at.button(key="yaml_load").click().run()
    no_exception(at)
    assert "the pasted YAML: unknown option 'treshold'" in [e.value for e in at.error]


def test_new_job_form_for_every_command_opens(workspace, monkeypatch):
    from app.forms import FORMS

    for command in FORMS:
        at = open_page("new_job", workspace, monkeypatch, cmd=command)
        no_exception(at)


def test_training_overlays_runs(workspace, monkeypatch):
    at = open_page("training", workspace, monkeypatch, run=["sft", "sft-short"])
    no_exception(at)
    assert at.multiselect(key="train_runs").value == ["sft", "sft-short"]
    assert "**loss**" in texts(at)
    assert "sft: step 4 · sft-short: step 2" in texts(at)


def test_dedup_explorer_clusters_and_diff(workspace, monkeypatch):
    at = open_page("dedup", workspace, monkeypatch, run="dd")
    no_exception(at)
    clusters = at.dataframe[0].value
    assert sorted(clusters["removed"]) == [1, 1]
    at.selectbox(key="cluster").set_value("near-1").run()
    shown = texts(at)
    assert "**near-r1** · near_duplicate · Jaccard **0.963**" in shown
    assert "<mark>omega</mark>" in shown  # the word the near duplicate added


def test_dedup_explorer_benchmark_matches(workspace, monkeypatch):
    at = open_page("dedup", workspace, monkeypatch, run="cur")
    no_exception(at)
    shown = texts(at)
    assert "**leak0** · contaminated:gsm8k_test" in shown
    assert shown.count("<mark>") >= 2


def test_generation_monitor_counts(workspace, monkeypatch):
    at = open_page("generation", workspace, monkeypatch, run="distill")
    no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["done / total"].startswith("4")
    assert metrics["truncated"] == "4" and metrics["failed"] == "0"
    assert len(at.expander) >= 4  # samples


def test_pairs_page(workspace, monkeypatch):
    at = open_page("pairs", workspace, monkeypatch, run="pairs")
    no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["pairs"] == "6" and metrics["chosen is longer"] == "100%"
    assert "`both_wrong` 3" in texts(at)
    at.selectbox(key="pair_verdict").set_value("chosen_verified").run()
    assert "**p1** · verdict `chosen_verified`" in texts(at)


def test_mixture_lab(mix_workspace, monkeypatch):
    at = open_page("mixture", mix_workspace, monkeypatch, run="mix-search")
    no_exception(at)
    assert {m.label: m.value for m in at.metric}["proxy runs"] == "4"
    assert at.code[-1].value.startswith(f"wb mix search {mix_workspace / 'mix-fit'} --output")
    at.slider(key="bound_python").set_value((0.0, 0.3)).run()
    assert "--max-weight python=0.3" in at.code[-1].value


def test_settings_keeps_only_variable_names(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-secret-value")
    at = open_page("settings", tmp_path, monkeypatch)
    at.text_input(key="ep_name").input("local")
    at.text_input(key="ep_url").input("http://127.0.0.1:8000/v1")
    at.text_input(key="ep_env").input("MY_KEY")
    at.button[0].click().run()
    no_exception(at)
    saved = (tmp_path / ".wb-ui.yaml").read_text()
    assert "MY_KEY" in saved and "sk-secret" not in saved
    assert list(at.dataframe[0].value["key"]) == ["set"]
    at.text_input(key="ep_env").input("sk-abcdefghijklmnopqrstuvwxyz")
    at.button[0].click().run()
    assert any("not an environment variable name" in e.value for e in at.error)


def test_new_job_fills_endpoints_from_settings_and_runs_by_name(workspace, tmp_path, monkeypatch):
    root = tmp_path / "ws"
    shutil.copytree(workspace / "cur", root / "cur")
    (root / ".wb-ui.yaml").write_text("endpoints:\n- {name: local, base_url: 'http://127.0.0.1:8000/v1', "
                                      "api_key_env: MY_KEY}\n")
    at = open_page("new_job", root, monkeypatch, cmd="distill")
    at.text_input(key="f_distill_prompts").input("cur").run()
    at.selectbox(key="endpoint_pick").set_value("local").run()
    no_exception(at)
    command = at.code[-1].value
    assert command.startswith(f"wb distill {root / 'cur'} ")  # a run named as in the workspace
    assert "--api-key-env MY_KEY" in command and "--base-url http://127.0.0.1:8000/v1" in command
