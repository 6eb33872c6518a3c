"""The run-directory contract: the one JSON reader, the one atomic writer, and `run_state` on every
combination of marker, manifest, progress and launch record (the precedence its docstring states)."""

from __future__ import annotations

import json
import os

import pytest

from workbench.errors import InputError
from workbench.runfiles import (
    INCOMPLETE,
    JOB,
    LOG,
    MANIFEST,
    PROGRESS,
    read_json,
    run_state,
    temp_owner,
    temp_path,
    write_atomic,
)
from workbench.runs import run_info

DEAD = 2 ** 22 + 12345  # above the kernel's largest pid: never a live process
LIVE = os.getpid()
DONE = {"stage": "dedup", "status": "complete", "rows_in": 5, "rows_out": 3, "usage": {"requests": 2}}


def progress(state: str, pid: int, **extra: object) -> dict:
    return {"state": state, "stage": "dedup", "pid": pid, "done": 2, "total": 4, "error": None, **extra}


# (files in the run directory, expected state, a piece of the expected error or None)
CASES = {
    "finished": ({MANIFEST: DONE, PROGRESS: progress("complete", LIVE)}, "complete", None),
    "finished, stale progress of a dead pid": ({MANIFEST: DONE, PROGRESS: progress("running", DEAD)}, "complete", None),
    "finished, a later step failed in it": ({MANIFEST: DONE, PROGRESS: progress("failed", DEAD, error="boom")},
                                            "complete", None),
    "finished, a later step at work in it": ({MANIFEST: DONE, PROGRESS: progress("running", LIVE)}, "running", None),
    "unfinished, live pid, no progress yet": ({INCOMPLETE: {"stage": "dedup", "pid": LIVE}}, "running", None),
    "unfinished, live pid, progress running": ({INCOMPLETE: {"pid": LIVE}, PROGRESS: progress("running", LIVE)},
                                              "running", None),
    "unfinished, dead pid": ({INCOMPLETE: {"stage": "dedup", "pid": DEAD}}, "interrupted", f"process {DEAD} is gone"),
    "unfinished, progress running, dead pid": ({INCOMPLETE: {"pid": DEAD}, PROGRESS: progress("running", DEAD)},
                                               "interrupted", f"process {DEAD} is gone"),
    "failed": ({INCOMPLETE: {"pid": LIVE}, PROGRESS: progress("failed", LIVE, error="InputError: bad row 3")},
               "failed", "bad row 3"),
    "interrupted by a signal": ({INCOMPLETE: {"pid": DEAD}, PROGRESS: progress("interrupted", DEAD,
                                                                               error="interrupted by a signal")},
                                "interrupted", "interrupted by a signal"),
    "corrupt manifest": ({MANIFEST: "{half"}, "unreadable", "manifest.json: not valid JSON"),
    "manifest not an object": ({MANIFEST: "[1, 2]"}, "unreadable", "manifest.json: expected a JSON object"),
    "progress says complete, no manifest": ({PROGRESS: progress("complete", LIVE)}, "interrupted",
                                            "progress.json says complete, but the run has no manifest.json"),
    "redo starting over a complete progress": ({INCOMPLETE: {"pid": LIVE}, PROGRESS: progress("complete", DEAD)},
                                               "running", None),
    "corrupt progress, dead marker": ({INCOMPLETE: {"pid": DEAD}, PROGRESS: "{half"}, "unreadable",
                                      "progress.json: not valid JSON"),
    "launched, failed before any progress": ({JOB: {"pid": DEAD, "returncode": 2}, LOG: "$ wb dedup x\nwb dedup: "
                                              "error: x: no such file\n"}, "failed", "wb dedup: error: x: no such file"),
    "launched, killed": ({JOB: {"pid": DEAD, "returncode": None}}, "interrupted", f"process {DEAD} is gone"),
    "launched, running": ({JOB: {"pid": LIVE, "returncode": None, "stage": "dedup"}}, "running", None),
    "launched again over a failed run": ({INCOMPLETE: {"pid": DEAD}, PROGRESS: progress("failed", DEAD, error="x"),
                                          JOB: {"pid": LIVE, "returncode": None}}, "running", None),
    "launched again over a complete run": ({MANIFEST: DONE, PROGRESS: progress("complete", DEAD),
                                            JOB: {"pid": LIVE, "returncode": None}}, "running", None),
    "nothing": ({}, "unknown", None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_run_state_on_each_combination_of_files(tmp_path, case):
    files, state, error = CASES[case]
    for name, content in files.items():
        (tmp_path / name).write_text(content if isinstance(content, str) else json.dumps(content))
    st = run_state(tmp_path)
    assert st.state == state
    assert (st.error is None) if error is None else (error in st.error and "\n" not in st.error)
    assert run_info(tmp_path)["state"] == state  # `wb runs` (and the app, which lists run_info rows) agree


def test_run_state_takes_numbers_from_the_manifest_and_live_fields_from_progress(tmp_path):
    (tmp_path / MANIFEST).write_text(json.dumps({**DONE, "command": "wb dedup a --output b", "wall_seconds": 1.5}))
    (tmp_path / PROGRESS).write_text(json.dumps(progress("complete", DEAD, in_flight=0, usage={"requests": 9,
                                                                                               "sampled_tokens": 7})))
    st = run_state(tmp_path)
    assert (st.stage, st.rows_in, st.rows_out, st.wall_seconds, st.command) == ("dedup", 5, 3, 1.5,
                                                                                "wb dedup a --output b")
    assert st.usage == {"requests": 2, "sampled_tokens": 7} and st.extra == {"in_flight": 0}
    assert (st.done, st.total) == (2, 4) and st.finished


def test_an_unfinished_run_names_its_command_from_the_marker(tmp_path):
    (tmp_path / INCOMPLETE).write_text(json.dumps({"stage": "convert", "pid": DEAD, "argv": ["wb", "convert", "a", "b"]}))
    assert run_state(tmp_path).command == "wb convert a b"


def test_read_json_is_none_when_missing_and_one_line_naming_the_file_when_corrupt(tmp_path):
    path = tmp_path / "x.json"
    assert read_json(path) is None
    path.write_text('{"a": 1}')
    assert read_json(path) == {"a": 1}
    for content, message in [("{half", "not valid JSON"), ("[1]", "expected a JSON object; found list"),
                             (b"\xff\xfe{", "not valid JSON")]:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(InputError) as info:
            read_json(path)
        assert str(info.value).startswith(f"{path}: {message}") and "\n" not in str(info.value)


def test_write_atomic_writes_bytes_text_and_json_through_one_temporary_name(tmp_path):
    write_atomic(tmp_path / "a.bin", b"\x00\x01")
    write_atomic(tmp_path / "b.txt", "héllo")
    write_atomic(tmp_path / "c.json", {"n": 1, "path": tmp_path})
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01" and (tmp_path / "b.txt").read_text() == "héllo"
    assert read_json(tmp_path / "c.json") == {"n": 1, "path": str(tmp_path)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.txt", "c.json"]  # no temporary left
    tmp = temp_path(tmp_path / "data.parquet")
    assert tmp.name == f".data.parquet.tmp-{os.getpid()}" and temp_owner(tmp.name) == os.getpid()
    assert temp_owner("data.parquet") is None and temp_owner(".x.tmp-abc") is None
