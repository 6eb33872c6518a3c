"""The data browser's whole-table tools (chat search, sort by length or score, histograms, restoring removed
rows), the eval page's readers, the file picker's checks and the chat helpers, as plain functions and as
pages under AppTest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from apptest import no_exception, open_page, texts

from app import tables


def chat_file(path: Path) -> Path:
    """Five chat rows with scores; answers of 1, 30, 21, 20 and 5 characters; one mentions Paris."""
    answers = ["a", "x" * 30, "The capital is Paris.", "y" * 20, "zzzzz"]
    rows = [{"id": f"c{i}", "score": float(s),
             "messages": [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": a}]}
            for i, (a, s) in enumerate(zip(answers, [0.5, 0.1, 0.9, 0.3, 0.7], strict=True))]
    pl.DataFrame(rows).write_parquet(path)
    return path


def test_contains_searches_chat_contents_over_the_whole_table(tmp_path):
    path = chat_file(tmp_path / "chat.parquet")
    hit = (tables.Filter("messages", "contains", "paris"),)
    assert tables.count_rows(path, hit) == 1
    assert tables.read_page(path, 0, 2, hit)["id"].to_list() == ["c2"]
    assert tables.count_rows(path, (tables.Filter("messages", "contains", "question"),)) == 5


def test_sort_by_score_and_by_answer_length_orders_every_page(tmp_path):
    path = chat_file(tmp_path / "chat.parquet")
    by_score = tables.Sort("score", "value", descending=True)
    pages = [tables.read_page(path, p, 2, order=by_score)["id"].to_list() for p in range(3)]
    assert pages == [["c2", "c4"], ["c0", "c3"], ["c1"]]
    by_answer = tables.Sort("messages", "assistant characters", descending=False)
    assert tables.read_page(path, 0, 5, order=by_answer)["id"].to_list() == ["c0", "c4", "c3", "c2", "c1"]
    assert tables.full_row(path, 4, order=by_answer)["id"] == "c1"
    with pytest.raises(tables.InputError, match="cannot measure 'characters' of a Float64 column"):
        tables.read_page(path, 0, 2, order=tables.Sort("score", "characters"))


def test_histogram_counts_answer_lengths_and_scores(tmp_path):
    path = chat_file(tmp_path / "chat.parquet")
    lengths = tables.histogram(path, "messages", "assistant characters", bins=3)
    assert lengths["rows"].to_list() == [2, 1, 2]  # 1, 5 | 20 | 21, 30 characters
    assert (lengths["start"][0], lengths["end"][-1]) == (1.0, 30.0)
    scores = tables.histogram(path, "score", "value", bins=2)
    assert scores["rows"].to_list() == [2, 3]
    only_paris = tables.histogram(path, "score", filters=(tables.Filter("messages", "contains", "Paris"),))
    assert only_paris.to_dicts() == [{"start": 0.4, "end": 1.4, "rows": 1}]


def test_restore_removed_rows_into_a_new_run(workspace, tmp_path):
    out = tmp_path / "restored"
    manifest = tables.restore_rows(workspace / "cur" / "removed.parquet", ["copy-q0"], out)
    assert (manifest["stage"], manifest["rows_in"], manifest["rows_out"], manifest["restored"]) == ("restore", 39, 40, 1)
    restored = pl.read_parquet(out / "data.parquet")
    assert restored.columns == pl.read_parquet(workspace / "cur" / "data.parquet").columns
    assert restored["id"].to_list()[-1] == "copy-q0"
    with pytest.raises(tables.InputError, match="no removed row with id 'nope'"):
        tables.restore_rows(workspace / "cur" / "removed.parquet", ["nope"], tmp_path / "other")
    with pytest.raises(tables.InputError, match="exists and is not empty"):
        tables.restore_rows(workspace / "cur" / "removed.parquet", ["copy-q0"], out)


def test_browser_sorts_the_whole_file_and_restores_a_row(workspace, tmp_path, monkeypatch):
    root = tmp_path / "ws"
    shutil.copytree(workspace / "cur", root / "cur")
    chat_file(root / "chat.parquet")
    at = open_page("browse", root, monkeypatch, path="chat.parquet")
    no_exception(at)
    at.selectbox(key="sort_col").set_value("messages").run()
    at.selectbox(key="sort_measure").set_value("assistant characters").run()
    no_exception(at)
    assert list(at.dataframe[0].value["id"]) == ["c1", "c2", "c3", "c4", "c0"]
    at.selectbox(key="hist_col").set_value("score").run()
    no_exception(at)
    assert "5 rows with a value, over the filtered table" in texts(at)
    at = open_page("browse", root, monkeypatch, run="cur", file="removed.parquet", reason="exact_duplicate")
    assert at.text_input(key="restore_ids").value == "copy-q0"
    at.text_input(key="restore_out").input("cur-fixed")
    at.button(key="restore_go").click().run()
    no_exception(at)
    assert "wrote 40 rows to cur-fixed/data.parquet (39 kept by cur + 1 restored)" in [s.value for s in at.success]
    assert json.loads((root / "cur-fixed" / "manifest.json").read_text())["restored"] == 1


@pytest.fixture(scope="module")
def eval_ws(tmp_path_factory) -> Path:
    from evalruns import make_eval_runs

    return make_eval_runs(tmp_path_factory.mktemp("evalws"))


def test_eval_readers_table_items_and_the_paired_compare(eval_ws):
    from app import evals

    assert evals.eval_runs(eval_ws) == ["eval-weak", "eval-strong"]
    table = evals.benchmark_table(eval_ws, ["eval-weak", "eval-strong"])
    assert table.select("run", "model", "benchmark", "accuracy", "items").rows() == [
        ("eval-weak", "weak", "sums", 0.4, 10), ("eval-strong", "strong", "sums", 0.8, 10)]
    wrong = evals.item_results(eval_ws / "eval-weak", "sums", "wrong")
    assert wrong["item_id"].to_list() == ["s4", "s5", "s6", "s7", "s8", "s9"]
    assert wrong.row(0, named=True) | {} == {**wrong.row(0, named=True), "model answer": "9", "reference": "8",
                                              "verdict": "wrong", "prompt": "What is 4 + 4?"}
    out = evals.run_compare(eval_ws, ["eval-weak", "eval-strong"])
    assert "sums             eval-strong" in out and "+40.0    [+10.0, +70.0]" in out and out.endswith("yes")
    with pytest.raises(evals.InputError, match="at least two"):
        evals.run_compare(eval_ws, ["eval-weak"])


def test_eval_page_and_run_comparison_show_accuracy(eval_ws, monkeypatch):
    at = open_page("eval", eval_ws, monkeypatch)
    no_exception(at)
    assert list(at.dataframe[0].value["accuracy"]) == [0.4, 0.8]
    assert len(at.dataframe[1].value) == 10  # every sample of the last run
    at.selectbox(key="ev_item_verdict").set_value("wrong").run()
    assert list(at.dataframe[1].value["item_id"]) == ["s8", "s9"]
    at.button(key="ev_cmp_go").click().run()
    no_exception(at)
    assert "+40.0    [+10.0, +70.0]" in texts(at)
    at = open_page("runs", eval_ws, monkeypatch)
    at.selectbox(key="cmp_a").set_value("eval-weak").run()
    at.selectbox(key="cmp_b").set_value("eval-strong").run()
    no_exception(at)
    accuracy = next(d.value for d in at.dataframe if "b - a (points)" in d.value.columns)
    assert accuracy.to_dict("records") == [{"benchmark": "sums", "a": 0.4, "b": 0.8, "b - a (points)": 40.0}]


def test_chat_asks_an_endpoint_and_names_its_error(tmp_path):
    from app import chat
    from tests.mock_server import MockServer

    server = MockServer().start()
    try:
        reply = chat.ask(server.url, "mock", [{"role": "user", "content": "hello [reply:hi there]"}])
        assert reply == "hi there"
        assert chat.first_model(server.url) == "mock"
        with pytest.raises(chat.InputError, match="HTTP 400: scripted bad request"):
            chat.ask(server.url, "mock", [{"role": "user", "content": "[400]"}])
    finally:
        server.stop()
    with pytest.raises(chat.InputError, match="chat/completions: .*refused"):
        chat.ask(f"http://127.0.0.1:{_closed_port()}/v1", "m", [{"role": "user", "content": "x"}], timeout=5)


def _closed_port() -> int:
    from tests.net import free_port

    return free_port()


@pytest.mark.slow
def test_chat_serves_a_run_model_on_demand_and_stops_it(tmp_path, tiny_model_dir):
    from app import chat
    from app.runs import list_runs
    from workbench.runfiles import pid_alive

    root = tmp_path / "ws"
    shutil.copytree(tiny_model_dir, root / "sft" / "model")
    (root / "sft" / "manifest.json").write_text(json.dumps({"stage": "train-sft", "status": "complete"}))
    (target,) = [t for t in chat.targets(root) if t.model_dir is not None]
    assert target.label == "run: sft"
    live = chat.start_server(root, target.model_dir)
    try:
        assert live["url"].startswith("http://127.0.0.1:") and live["model"] == "sft"
        assert chat.served(root, target.model_dir) == live  # a reload finds the same server
        reply = chat.ask(live["url"], live["model"], [{"role": "user", "content": "hi"}], max_tokens=4)
        assert isinstance(reply, str)
        assert [r["name"] for r in list_runs(root)] == ["sft"]  # the server's folder is not listed as a run
    finally:
        assert chat.stop_server(root, target.model_dir) in ("stopped", "killed")
    assert not pid_alive(live["pid"]) and chat.served(root, target.model_dir) is None


def test_chat_page_talks_to_two_endpoints_side_by_side(tmp_path, monkeypatch):
    from app import settings
    from tests.mock_server import MockServer

    root = tmp_path / "ws"
    root.mkdir()
    server = MockServer(script=lambda text, req: f"{text} [reply:{req['model']} says {text}]").start()
    try:
        settings.save(root, {"endpoints": [{"name": "mockA", "base_url": server.url, "api_key_env": None},
                                           {"name": "mockB", "base_url": server.url, "api_key_env": None}]})
        at = open_page("chat", root, monkeypatch)
        no_exception(at)
        assert "wb serve MODEL_DIR --port 8000" in texts(at)
        at.selectbox(key="chat_b").set_value("endpoint: mockB").run()
        at.text_input(key="chat_model_1_endpoint: mockB").input("other").run()
        at.chat_input(key="chat_input").set_value("ping").run()
        no_exception(at)
        assert [t.value for t in at.text] == ["ping", "mock says ping", "ping", "other says ping"]
    finally:
        server.stop()


def test_workspace_paths_uploads_and_the_line_of_a_bad_jsonl(workspace, tmp_path):
    from app import files

    paths = files.workspace_paths(workspace, ("file", "run"))
    assert {"cur", "dd", "sft", "pairs"} <= set(paths) and not any(p.startswith("cur/") for p in paths)
    assert "sft/model" in files.workspace_paths(workspace, ("model",))
    root = tmp_path / "ws"
    root.mkdir()
    good = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n' * 3
    path = files.save_upload(root, "my data.jsonl", good)
    assert path == root / "uploads" / "my_data.jsonl" and path.read_bytes() == good
    assert files.save_upload(root, "my data.jsonl", good) == path  # the same bytes: the same file
    assert files.save_upload(root, "my data.jsonl", good + good).name == "my_data-2.jsonl"
    assert files.check_source(path) == "3 rows, all valid SFT messages"
    bad = files.save_upload(root, "bad.jsonl", good + b'{"messages": [}\n')
    with pytest.raises(files.InputError, match=r"bad.jsonl: line 4: invalid JSON"):
        files.check_source(bad)
    with pytest.raises(files.InputError, match="unknown format '.exe'"):
        files.save_upload(root, "x.exe", b"")


def test_browser_upload_is_checked_then_opened(tmp_path, monkeypatch):
    root = tmp_path / "ws"
    root.mkdir()
    at = open_page("browse", root, monkeypatch, path="none.jsonl")
    bad = b'{"text": "a"}\n{"text": "b"\n'
    at.file_uploader(key="browse_pick_upload").set_value(("bad.jsonl", bad, "application/json")).run()
    no_exception(at)
    assert [e.value for e in at.error][0].endswith("bad.jsonl: line 2: invalid JSON (Expecting ',' delimiter at "
                                                   "column 13)")
    assert not (root / "uploads" / "bad.jsonl").exists()
    at.file_uploader(key="browse_pick_upload").set_value(("ok.jsonl", b'{"text": "a"}\n{"text": "b"}\n',
                                                           "application/json")).run()
    no_exception(at)
    assert [s.value for s in at.success] == ["uploads/ok.jsonl: 2 rows, all valid text corpus"]
    assert at.text_input(key="browse_path").value == "uploads/ok.jsonl"
    assert "**2** rows" in texts(at)


@pytest.mark.slow
def test_browser_semantic_search_with_a_workspace_encoder(tmp_path, tiny_model_dir, monkeypatch):
    root = tmp_path / "ws"
    (root / "data").mkdir(parents=True)
    texts_ = ["the cat sat on the mat", "stock prices fell sharply today", "a recipe for lemon cake"]
    (root / "data" / "notes.jsonl").write_text("".join(json.dumps({"id": f"n{i}", "text": t}) + "\n"
                                                       for i, t in enumerate(texts_)))
    shutil.copytree(tiny_model_dir, root / "models" / "enc")
    at = open_page("browse", root, monkeypatch, path="data/notes.jsonl")
    at.selectbox(key="sem_pick_list").set_value("models/enc").run()
    assert at.text_input(key="sem_encoder").value == "models/enc"
    at.text_input(key="sem_query").input("stock prices fell sharply today").run()
    at.button(key="sem_go").click().run()
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    hits = next(d.value for d in at.dataframe if "rank" in d.value)
    assert list(hits["id"])[0] == "n1" and hits.iloc[0]["score"] == pytest.approx(1.0, abs=1e-3)
    assert len(hits) == 3
    assert list((root / ".wb-ui" / "search").iterdir())  # the row embeddings are kept for the next query


def test_new_job_picker_fills_the_sources_and_the_form_keeps_them(tmp_path, monkeypatch):
    root = tmp_path / "ws"
    root.mkdir()
    for name in ("a.jsonl", "b.jsonl"):
        (root / name).write_text('{"text": "x"}\n')
    at = open_page("new_job", root, monkeypatch, cmd="dedup")
    at.selectbox(key="pick_f_dedup_sources_list").set_value("a.jsonl").run()
    at.selectbox(key="pick_f_dedup_sources_list").set_value("b.jsonl").run()
    no_exception(at)
    assert at.text_input(key="f_dedup_sources").value == "a.jsonl b.jsonl"
    assert at.code[-1].value.startswith(f"wb dedup {root / 'a.jsonl'} {root / 'b.jsonl'} --output ")
