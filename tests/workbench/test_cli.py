"""The `wb` CLI as a user meets it: real commands, one-line errors, non-zero exits, nothing half-written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from workbench.cli import main
from workbench.workspace import bundled_data_dir

GSM8K_TEST = bundled_data_dir() / "gsm8k" / "test.jsonl"


def test_info_reports_versions_and_workspace(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("WB_HOME", str(tmp_path))
    assert main(["info", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["versions"]["pyarrow"]
    assert facts["workspace"] == str(tmp_path)
    assert facts["cpus"] >= 1


def test_info_reports_missing_system_programs(capsys, monkeypatch, tmp_path):
    """With an empty PATH neither bubblewrap nor Chromium is found, and `wb info` says how to install each."""
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["system"] == {"bwrap": None, "chromium": None}
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "bwrap      not installed: apt-get install bubblewrap (needed by --verify code (its sandbox))" in out
    assert "chromium   not installed: apt-get install chromium (needed by the app's browser tests)" in out


def test_inspect_bundled_gsm8k(capsys):
    assert main(["inspect", str(GSM8K_TEST)]) == 0
    out = capsys.readouterr().out
    assert "rows     1,319" in out
    assert '"question" looks like a prompt column' in out
    assert out.count("sample ") == 3


def test_inspect_json_for_sft_messages(tmp_path, capsys):
    path = tmp_path / "sft.jsonl"
    path.write_text("".join(json.dumps({"id": str(i), "messages": [
        {"role": "user", "content": "q" * i}, {"role": "assistant", "content": "a"}]}) + "\n" for i in range(1, 5)))
    assert main(["inspect", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "sft" and report["valid"] is True and report["rows"] == 4
    assert report["nulls"] == {"id": 0, "messages": 0}
    assert report["length_chars"]["messages"] == {"min": 2, "mean": 3.5, "p50": 3, "p90": 4, "max": 5}
    assert report["turns"]["messages"]["max"] == 2
    assert len(report["samples"]) == 3


def test_inspect_reports_an_invalid_file_without_failing(tmp_path, capsys):
    path = tmp_path / "sft.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "bot", "content": "x"}]}) + "\n")
    assert main(["inspect", str(path)]) == 0
    assert 'INVALID' in capsys.readouterr().out


def test_convert_to_parquet_file_and_jsonl_file(tmp_path, capsys):
    assert main(["convert", str(GSM8K_TEST), str(tmp_path / "g.parquet")]) == 0
    assert pq.read_table(tmp_path / "g.parquet").num_rows == 1319
    assert main(["convert", str(tmp_path / "g.parquet"), str(tmp_path / "g.jsonl")]) == 0
    lines = (tmp_path / "g.jsonl").read_text().splitlines()
    assert len(lines) == 1319 and json.loads(lines[0])["question"].startswith("Janet")


def test_convert_to_run_directory_then_read_it_back(tmp_path, capsys):
    assert main(["convert", str(GSM8K_TEST), str(tmp_path / "run")]) == 0
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["rows_in"] == manifest["rows_out"] == 1319
    assert manifest["stage"] == "convert"
    assert main(["convert", str(tmp_path / "run"), str(tmp_path / "back.jsonl")]) == 0
    assert (tmp_path / "back.jsonl").read_text() .count("\n") == 1319


def test_validate_passes_and_fails(tmp_path, capsys):
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"prompt": "2+2?", "answer": "4"}) + "\n")
    assert main(["validate", str(good)]) == 0
    assert "1 rows, all valid RL prompts" in capsys.readouterr().out
    assert main(["validate", str(GSM8K_TEST)]) == 2
    assert '"question" looks like a prompt column' in capsys.readouterr().err


@pytest.mark.parametrize(("content", "expected"), [
    (None, "no such file or directory"),
    (b"", "the file is empty"),
    (b'{"text": "a"}\n{"text": \n', "line 2: invalid JSON"),
    (b'{"text": "\xff"}\n', "line 1: bytes are not valid UTF-8"),
])
def test_bad_input_is_one_line_and_nonzero_and_writes_nothing(tmp_path, capsys, content, expected):
    src = tmp_path / "in.jsonl"
    if content is not None:
        src.write_bytes(content)
    out = tmp_path / "out"
    assert main(["convert", str(src), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and err.startswith("wb convert: error: ")
    assert not out.exists()


def test_bad_input_midway_leaves_no_complete_looking_output(tmp_path, capsys, monkeypatch):
    from workbench import io

    monkeypatch.setattr(io, "CHUNK_BYTES", 64)
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(40)) + "{broken\n")
    assert main(["convert", str(src), str(tmp_path / "out.parquet")]) == 2
    assert main(["convert", str(src), str(tmp_path / "run")]) == 2
    assert "line 41: invalid JSON" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["in.jsonl"]


def test_unknown_format_error(tmp_path, capsys):
    (tmp_path / "x.xlsx").write_text("x")
    assert main(["inspect", str(tmp_path / "x.xlsx")]) == 2
    assert "unknown format '.xlsx'" in capsys.readouterr().err


def test_debug_shows_the_traceback(tmp_path):
    from workbench.errors import InputError

    with pytest.raises(InputError):
        main(["inspect", str(tmp_path / "missing.jsonl"), "--debug"])


def test_console_script_runs_and_does_not_import_heavy_libraries():
    wb = Path(sys.executable).parent / "wb"
    proc = subprocess.run([str(wb), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "inspect" in proc.stdout and "convert" in proc.stdout
    code = ("import sys, workbench.cli, workbench.io, workbench.schemas, workbench.inspection, workbench.rundir;"
            "heavy = [m for m in ('torch', 'vllm', 'streamlit', 'transformers') if m in sys.modules];"
            "print(heavy)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"


def test_a_command_run_in_process_records_its_own_command(tmp_path):
    """`wb demo` and scripts call `main(argv)` in one process: each run's manifest names the command that made
    it (the app shows it as the run's command line), and the caller's sys.argv is left as it was."""
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"text": f"row number {i % 3} of the set"}) + "\n" for i in range(6)))
    before = list(sys.argv)
    assert main(["dedup", str(data), "--output", str(tmp_path / "dd")]) == 0
    manifest = json.loads((tmp_path / "dd" / "manifest.json").read_text())
    assert manifest["command"] == f"wb dedup {data} --output {tmp_path / 'dd'}"
    assert manifest["rows_in"] == 6 and manifest["rows_out"] == 3
    assert sys.argv == before


def test_overwrite_and_the_command_line_travel_with_each_call_not_in_globals(tmp_path, capsys):
    """`--overwrite` (anywhere on the line) and the argv reach the run through its options: two calls in one
    process, one with and one without, behave differently, record their own argv, and leave sys.argv alone."""
    src = tmp_path / "rows.jsonl"
    src.write_text('{"text": "a"}\n{"text": "b"}\n')
    first, second = tmp_path / "first", tmp_path / "second"
    for out in (first, second):
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    before = list(sys.argv)
    argv = ["convert", "--overwrite", str(src), str(first)]
    assert main(argv) == 0
    assert main(["convert", str(src), str(second)]) == 2  # the first call's --overwrite did not stay behind
    assert "not a wb run (notes.txt)" in capsys.readouterr().err
    manifest = json.loads((first / "manifest.json").read_text())
    assert manifest["argv"] == ["wb", *argv] and manifest["command"] == "wb " + " ".join(argv)
    assert manifest["overwrite"] is True and not (first / "notes.txt").exists()
    assert (second / "notes.txt").read_text() == "mine" and sys.argv == before


def test_an_interrupt_wrapped_by_a_task_group_is_still_an_interrupt():
    """anyio's task groups wrap a KeyboardInterrupt raised inside them in a BaseExceptionGroup; the CLI and the
    run directory must still read it as Ctrl-C/SIGTERM (exit 130, state interrupted), not as a crash."""
    from workbench.errors import is_interrupt

    assert is_interrupt(KeyboardInterrupt())
    assert is_interrupt(BaseExceptionGroup("tg", [KeyboardInterrupt(), BaseExceptionGroup("inner", [KeyboardInterrupt()])]))
    assert not is_interrupt(BaseExceptionGroup("tg", [KeyboardInterrupt(), ValueError("x")]))
    assert not is_interrupt(ValueError("x")) and not is_interrupt(None)


def test_sigterm_inside_a_running_loop_unwinds_it_between_callbacks():
    """The handler raises the interrupt from a callback of the running loop (never inside a library's
    bookkeeping), and not at all once the loop's work has ended (uvicorn re-raises the signal it handled)."""
    import asyncio
    import os
    import signal

    from workbench import cli

    async def work():
        os.kill(os.getpid(), signal.SIGTERM)  # delivered while this task runs
        await asyncio.sleep(5)

    previous = signal.signal(signal.SIGTERM, cli._terminate)
    try:
        with pytest.raises(KeyboardInterrupt):
            asyncio.run(asyncio.wait_for(work(), 10))

        async def ends_as_signalled():
            os.kill(os.getpid(), signal.SIGTERM)  # handled after this, the last task, has returned

        asyncio.run(ends_as_signalled())  # no KeyboardInterrupt: nothing was left to interrupt
    finally:
        signal.signal(signal.SIGTERM, previous)
