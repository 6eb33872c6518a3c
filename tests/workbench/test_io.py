"""Readers and writers: every format round-trips, streams, and bad input names the file and line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workbench import io
from workbench.errors import InputError
from workbench.io import open_source, write_table, write_tables

ROWS = [
    {"id": "a", "text": "héllo wörld", "score": 1.5, "messages": [{"role": "user", "content": "hi"}]},
    {"id": "b", "text": "second", "score": None, "messages": [{"role": "assistant", "content": "yo"}]},
    {"id": "c", "text": "third", "score": 3.0, "messages": []},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def table():
    return pa.Table.from_pylist(ROWS)


@pytest.mark.parametrize("suffix", ["jsonl", "json", "parquet", "csv"])
def test_round_trip_through_each_format(tmp_path, table, suffix):
    flat = table.drop_columns(["messages"]) if suffix == "csv" else table
    path = tmp_path / f"data.{suffix}"
    if suffix == "jsonl":
        write_jsonl(path, flat.to_pylist())
    elif suffix == "json":
        path.write_text(json.dumps(flat.to_pylist()))
    elif suffix == "parquet":
        write_table(flat, path)
    else:
        import pyarrow.csv as pcsv
        pcsv.write_csv(flat, path)
    source = open_source(path)
    assert source.format == suffix
    assert source.read().to_pylist() == flat.to_pylist()
    assert source.count_rows() == 3


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_written_files_are_read_by_datasets_polars_and_duckdb(tmp_path, table, fmt):
    path = tmp_path / f"out.{fmt}"
    assert write_table(table, path) == 3
    assert open_source(path).read().to_pylist() == table.to_pylist()
    if fmt == "parquet":
        import datasets

        ds = datasets.load_dataset("parquet", data_files=str(path), split="train")
        assert ds["text"] == ["héllo wörld", "second", "third"]
        assert pl.read_parquet(path)["score"].to_list() == [1.5, None, 3.0]
        assert duckdb.sql(f"select count(*) from read_parquet('{path}')").fetchall()[0][0] == 3
    else:
        assert pl.read_ndjson(path)["id"].to_list() == ["a", "b", "c"]


def test_json_file_holding_json_lines_is_read_as_lines(tmp_path, table):
    path = write_jsonl(tmp_path / "lines.json", table.to_pylist())
    assert open_source(path).read().num_rows == 3


def test_directory_of_shards_is_one_source_with_unified_schema(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    write_jsonl(shards / "part-0.jsonl", [{"text": "a", "extra": None}])
    write_jsonl(shards / "part-1.jsonl", [{"text": "b", "extra": "x"}, {"text": "c"}])
    (shards / ".hidden.jsonl").write_text("not json\n")
    source = open_source(shards)
    assert len(source.files) == 2
    assert source.read().to_pylist() == [
        {"text": "a", "extra": None}, {"text": "b", "extra": "x"}, {"text": "c", "extra": None}]


def test_null_column_that_becomes_typed_later_in_a_big_file(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "CHUNK_BYTES", 256)  # force many chunks
    rows = [{"n": i, "note": None} for i in range(200)] + [{"n": 200, "note": "late"}]
    source = open_source(write_jsonl(tmp_path / "late.jsonl", rows))
    assert source.schema().field("note").type == pa.string()
    tables = list(source.iter_tables())
    assert len(tables) > 5  # streamed in many pieces
    assert sum(t.num_rows for t in tables) == 201
    assert pa.concat_tables(tables)["note"].to_pylist()[-1] == "late"


def test_save_to_disk_directory_and_dataset_dict(tmp_path, table):
    import datasets

    ds = datasets.Dataset.from_list(table.drop_columns(["messages"]).to_pylist())
    ds.save_to_disk(tmp_path / "single")
    assert open_source(tmp_path / "single").read()["id"].to_pylist() == ["a", "b", "c"]
    datasets.DatasetDict({"train": ds, "test": ds.select([0])}).save_to_disk(tmp_path / "dict")
    assert open_source(tmp_path / "dict").count_rows() == 3
    assert open_source(tmp_path / "dict", split="test").count_rows() == 1
    with pytest.raises(InputError, match="no split 'dev'"):
        open_source(tmp_path / "dict", split="dev")


def test_txt_is_one_row_per_paragraph(tmp_path):
    path = tmp_path / "play.txt"
    path.write_text("First Citizen:\nSpeak.\n\nAll:\nSpeak, speak.\n\n\n")
    assert open_source(path).read()["text"].to_pylist() == ["First Citizen:\nSpeak.", "All:\nSpeak, speak."]


def test_bundled_gsm8k_streams_in_batches():
    from workbench.workspace import bundled_data_dir

    source = open_source(bundled_data_dir() / "gsm8k" / "train.jsonl")
    assert source.schema().names == ["question", "answer"]
    assert source.count_rows() == 7473


# --- bad input -----------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="nope.jsonl: no such file"):
        open_source(tmp_path / "nope.jsonl")


def test_unknown_format(tmp_path):
    (tmp_path / "data.xml").write_text("<a/>")
    with pytest.raises(InputError, match=r"data.xml: unknown format '.xml'"):
        open_source(tmp_path / "data.xml")


def test_empty_file(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(InputError, match="empty.jsonl: the file is empty"):
        open_source(tmp_path / "empty.jsonl")


def test_malformed_json_line_reports_its_line_number(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3,,}\n{"a": 4}\n')
    with pytest.raises(InputError, match=r"bad.jsonl: line 3: invalid JSON"):
        open_source(path).read()


def test_malformed_line_far_into_a_chunked_file(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "CHUNK_BYTES", 100)
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(f'{{"a": {i}}}\n' for i in range(1, 50)) + "{oops\n")
    with pytest.raises(InputError, match=r"line 50: invalid JSON"):
        open_source(path).read()


def test_non_utf8_bytes_report_the_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(InputError, match=r"latin1.jsonl: line 2: bytes are not valid UTF-8"):
        open_source(path).read()


def test_column_changing_type_names_both_lines(tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", [{"x": "s"}, {"x": 1}])
    with pytest.raises(InputError, match=r"line 2: field 'x' is a number, but line 1 has a string"):
        open_source(path).read()


def test_json_line_that_is_not_an_object(tmp_path):
    path = tmp_path / "list.jsonl"
    path.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(InputError, match=r"line 2: expected a JSON object, got list"):
        open_source(path).read()


def test_malformed_csv(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(InputError, match=r"bad.csv: malformed CSV"):
        open_source(path).read()


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InputError, match=r"bad.parquet: not a readable parquet file"):
        open_source(path).read()


def test_missing_column_requested(tmp_path, table):
    write_table(table, tmp_path / "t.parquet")
    with pytest.raises(InputError, match=r"no column 'nope'"):
        list(open_source(tmp_path / "t.parquet").iter_tables(columns=["nope"]))


# --- atomic writes -------------------------------------------------------------------------------


def test_failure_mid_write_leaves_no_output(tmp_path, table):
    path = tmp_path / "out.parquet"

    def tables():
        yield table
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_tables(tables(), path)
    assert os.listdir(tmp_path) == []


def test_failure_mid_write_keeps_the_previous_complete_file(tmp_path, table):
    path = tmp_path / "out.parquet"
    write_table(table, path)

    def tables():
        yield table.slice(0, 1)
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        write_tables(tables(), path)
    assert pq.read_table(path).num_rows == 3
    assert os.listdir(tmp_path) == ["out.parquet"]


def test_killed_process_leaves_only_a_hidden_temp_file(tmp_path):
    """SIGKILL mid-write: the target name never appears; only a dot-file temp remains."""
    script = f"""
import os, pyarrow as pa
from workbench.io import write_tables
def tables():
    yield pa.table({{"x": list(range(1000))}})
    os.kill(os.getpid(), 9)
write_tables(tables(), {str(tmp_path / "out.parquet")!r})
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -9
    names = os.listdir(tmp_path)
    assert "out.parquet" not in names
    assert all(n.startswith(".") for n in names)
    # a directory reader skips hidden temp files, so nothing half-written is read as data
    (tmp_path / "real.jsonl").write_text('{"x": 1}\n')
    assert open_source(tmp_path).count_rows() == 1


def test_jsonl_with_a_line_longer_than_a_parse_block(tmp_path):
    import json

    from workbench.io import open_source

    big = "word " * 600_000  # 3 MB in one line, above pyarrow's 1 MB JSON block
    path = tmp_path / "big.jsonl"
    path.write_text(json.dumps({"text": big}) + "\n" + json.dumps({"text": "small"}) + "\n")
    table = open_source(path).read()
    assert table.num_rows == 2 and len(table["text"][0].as_py()) == len(big)


def test_hub_source_offline_gives_a_clear_error():
    with pytest.raises(InputError, match=r"hf://owner/missing: could not open the hub dataset .*local copy"):
        open_source("hf://owner/missing").schema()
