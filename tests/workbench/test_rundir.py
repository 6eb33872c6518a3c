"""Run directories: the manifest, and unfinished runs that are never mistaken for finished ones."""

from __future__ import annotations

import json
from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pytest

from workbench.errors import InputError
from workbench.io import open_source, write_table
from workbench.rundir import RunDir, Usage, read_manifest
from workbench.runfiles import INCOMPLETE


@dataclass
class Cfg:
    threshold: float = 0.8


def test_finished_run_has_manifest_and_is_a_valid_source(tmp_path):
    src_path = tmp_path / "in.jsonl"
    src_path.write_text('{"text": "a"}\n{"text": "b"}\n')
    source = open_source(src_path)
    with RunDir(tmp_path / "run", "test", Cfg(), inputs=[source], argv=["wb", "test", "x"]) as run:
        write_table(pa.table({"text": ["a"]}), run.product)
        run.finish(rows_in=2, rows_out=1, dropped={"too_short": 1}, usage=Usage(prefill_tokens=10, cost_usd=0.5))
    manifest = read_manifest(tmp_path / "run")
    assert manifest["status"] == "complete"
    assert manifest["command"] == "wb test x"
    assert manifest["config"] == {"threshold": 0.8}
    assert manifest["inputs"][0]["fingerprint"] == source.fingerprint()
    assert (manifest["rows_in"], manifest["rows_out"], manifest["dropped"]) == (2, 1, {"too_short": 1})
    assert manifest["usage"]["prefill_tokens"] == 10 and manifest["usage"]["cost_usd"] == 0.5
    assert manifest["outputs"] == ["data.parquet"]
    assert manifest["versions"]["pyarrow"] == pa.__version__
    assert manifest["wall_seconds"] >= 0
    assert not (tmp_path / "run" / INCOMPLETE).exists()
    assert open_source(tmp_path / "run").read()["text"].to_pylist() == ["a"]


def test_crashed_run_is_refused_as_unfinished(tmp_path):
    with pytest.raises(RuntimeError):
        with RunDir(tmp_path / "run", "test", argv=["wb", "test"], resumable=True) as run:
            write_table(pa.table({"text": ["a"]}), run.product)
            raise RuntimeError("killed")
    assert (tmp_path / "run" / "data.parquet").exists()
    with pytest.raises(InputError, match=r"run: this run failed \(RuntimeError: killed\); it has no finished "
                                         r"product \(re-run `wb test` to retry it\)"):
        open_source(tmp_path / "run")
    (tmp_path / "run" / "progress.json").unlink()  # as a SIGKILL before any progress leaves it
    with pytest.raises(InputError, match=r"run: this run is unfinished \(re-run `wb test` to complete it\)"):
        open_source(tmp_path / "run")


def test_failed_run_that_is_not_resumable_leaves_no_directory(tmp_path):
    with pytest.raises(RuntimeError):
        with RunDir(tmp_path / "run", "test") as run:
            write_table(pa.table({"text": ["a"]}), run.path / "part.parquet")
            raise RuntimeError("bad row 7")
    assert not (tmp_path / "run").exists()


def test_failed_run_that_wrote_nothing_leaves_no_directory(tmp_path):
    with pytest.raises(ValueError):
        with RunDir(tmp_path / "run", "test"):
            raise ValueError("bad input")
    assert not (tmp_path / "run").exists()


def test_redoing_a_finished_run_marks_it_unfinished_until_done(tmp_path):
    with RunDir(tmp_path / "run", "test") as run:
        write_table(pa.table({"x": [1]}), run.product)
        run.finish()
    again = RunDir(tmp_path / "run", "test").start()
    with pytest.raises(InputError, match="unfinished"):
        read_manifest(tmp_path / "run")
    again.finish(rows_out=1)
    assert read_manifest(tmp_path / "run")["rows_out"] == 1


def test_manifest_without_incomplete_marker_but_corrupt(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="manifest.json: not valid JSON"):
        read_manifest(tmp_path / "run")


def test_output_path_that_is_a_file(tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(InputError, match="exists and is not a directory"):
        RunDir(tmp_path / "taken", "test").start()


def test_manifest_is_plain_json(tmp_path):
    with RunDir(tmp_path / "run", "t", {"paths": [tmp_path]}) as run:
        run.finish(extra_field={"a": 1})
    data = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert data["config"]["paths"] == [str(tmp_path)] and data["extra_field"] == {"a": 1}


def test_a_run_of_another_command_is_not_overwritten(tmp_path):
    with RunDir(tmp_path / "run", "curate") as run:
        run.finish()
    with pytest.raises(InputError, match=r"holds a finished `curate` run; this is `dedup`"):
        RunDir(tmp_path / "run", "dedup").start()


def test_resume_guard_refuses_a_changed_config(tmp_path):
    RunDir(tmp_path / "run", "train", {"lr": 0.1, "max_steps": 5}, resumable=True, resume_guard=("max_steps",)).start()
    RunDir(tmp_path / "run", "train", {"lr": 0.1, "max_steps": 9}, resumable=True, resume_guard=("max_steps",)).start()
    with pytest.raises(InputError, match=r"an unfinished run with lr=0.1 is here; resuming it with lr=0.5"):
        RunDir(tmp_path / "run", "train", {"lr": 0.5, "max_steps": 9}, resumable=True,
               resume_guard=("max_steps",)).start()


def _finished(path, rows, stage="test", resumable=False):
    with RunDir(path, stage, resumable=resumable) as run:
        write_table(pa.table({"x": rows}), run.product)
        run.finish(rows_out=len(rows))


def test_a_foreign_directory_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_text("mine")
    with pytest.raises(InputError, match=r"photos: holds files that are not a wb run \(holiday.jpg\).*--overwrite"):
        RunDir(out, "test").start()
    assert (out / "holiday.jpg").read_text() == "mine" and not (out / INCOMPLETE).exists()
    with RunDir(out, "test", overwrite=True) as run:
        write_table(pa.table({"x": [1]}), run.product)
        run.finish(rows_out=1)
    assert sorted(p.name for p in out.iterdir()) == ["data.parquet", "manifest.json", "progress.json"]
    (tmp_path / "empty").mkdir()
    _finished(tmp_path / "empty", [1])  # an empty directory is fine


def test_a_failed_overwrite_puts_the_foreign_files_back(tmp_path):
    out = tmp_path / "d"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    with pytest.raises(ValueError):
        with RunDir(out, "test", overwrite=True):
            raise ValueError("bad input")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_a_redone_run_moves_the_old_product_aside_and_restores_it_on_failure(tmp_path):
    out = tmp_path / "run"
    _finished(out, [1, 2])
    with pytest.raises(ValueError):
        with RunDir(out, "test") as run:
            write_table(pa.table({"x": [9]}), run.path / "partial.parquet")
            raise ValueError("bad row")
    assert read_manifest(out)["rows_out"] == 2 and not (out / "partial.parquet").exists()
    assert pl.read_parquet(out / "data.parquet")["x"].to_list() == [1, 2]
    # a re-run that is killed (its `with` never exits) leaves no stale product to read directly
    RunDir(out, "test").start()
    assert (out / INCOMPLETE).exists() and not (out / "data.parquet").exists()
    with pytest.raises(FileNotFoundError):
        pl.read_parquet(out / "data.parquet")
    _finished(out, [3])  # the next run cleans up what the killed one moved aside
    assert sorted(p.name for p in out.iterdir()) == ["data.parquet", "manifest.json", "progress.json"]
    assert pl.read_parquet(out / "data.parquet")["x"].to_list() == [3]


def test_stale_temporary_files_are_removed_on_a_rerun(tmp_path):
    out = tmp_path / "run"
    _finished(out, [1])
    for name in (".data.parquet.tmp-999999999", ".staged.parquet", ".signatures.npy.tmp"):
        (out / name).write_text("left by a killed run")
    _finished(out, [2])
    assert sorted(p.name for p in out.iterdir()) == ["data.parquet", "manifest.json", "progress.json"]


def test_a_resumable_rerun_keeps_its_state_and_moves_only_products(tmp_path):
    out = tmp_path / "run"
    _finished(out, [1], resumable=True)
    (out / "ledger.sqlite").write_text("state")
    (out / ".ledger.sqlite.tmp-999999999").write_text("stale")
    RunDir(out, "test", resumable=True).start()
    assert sorted(p.name for p in out.iterdir()) == [".previous", INCOMPLETE, ".run-lock", "ledger.sqlite", "progress.json"]
    assert sorted(p.name for p in (out / ".previous").iterdir()) == ["data.parquet", "manifest.json"]


def test_an_output_path_under_a_file_is_an_input_error(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match=r"notes.txt is a file, so the output directory cannot be created"):
        RunDir(tmp_path / "notes.txt" / "sub" / "run", "test").start()


def test_cli_convert_and_curate_refuse_foreign_directories(tmp_path, capsys):
    from workbench.cli import main

    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "hello there"}\n')
    out = tmp_path / "out"
    out.mkdir()
    (out / "unrelated.csv").write_text("a,b\n")
    for command in (["convert", str(src), str(out)], ["curate", str(src), "--output", str(out)]):
        assert main(command) == 2
        assert "not a wb run (unrelated.csv)" in capsys.readouterr().err
    assert main(["convert", str(src), str(out), "--overwrite"]) == 0
    assert not (out / "unrelated.csv").exists() and read_manifest(out)["stage"] == "convert"
    assert main(["convert", str(src), str(tmp_path / "in.jsonl" / "x")]) == 2
    assert "in.jsonl is a file" in capsys.readouterr().err


def test_a_file_output_under_a_file_or_onto_a_directory_is_an_input_error(tmp_path):
    src = pa.table({"x": [1]})
    (tmp_path / "f.txt").write_text("x")
    (tmp_path / "d.parquet").mkdir()
    for target, message in [(tmp_path / "f.txt" / "o.parquet", "exists and is not a directory"),
                            (tmp_path / "f.txt" / "sub" / "o.jsonl", "f.txt is a file"),
                            (tmp_path / "d.parquet", "is a directory; name a file")]:
        with pytest.raises(InputError, match=message):
            write_table(src, target)


def test_files_a_launcher_wrote_first_are_not_foreign_and_survive(tmp_path):
    """The app writes wb.log, .wb-job.json and job-config.yaml into the directory before `wb` starts."""
    out = tmp_path / "job"
    out.mkdir()
    for name in ("wb.log", ".wb-job.json", "job-config.yaml"):
        (out / name).write_text("launcher")
    _finished(out, [1])
    assert sorted(p.name for p in out.iterdir()) == [".wb-job.json", "data.parquet", "job-config.yaml",
                                                     "manifest.json", "progress.json", "wb.log"]
    assert (out / ".wb-job.json").read_text() == "launcher"


def test_overwrite_and_argv_come_from_the_config_and_stay_out_of_its_record(tmp_path):
    """A command's config is a `RunOptions`: its `overwrite` lets the run replace foreign files, its `argv`
    is the manifest's command; neither is part of the recorded config or of a resume's comparison."""
    from workbench.config import RunOptions, option

    @dataclass
    class Options(RunOptions):
        threshold: float = option(0.8, "a setting")

    for name, config in (("yes", Options(overwrite=True, argv=["wb", "x", "--overwrite"])), ("no", Options())):
        (tmp_path / name).mkdir()
        (tmp_path / name / "notes.txt").write_text("mine")
        run = RunDir(tmp_path / name, "x", config, resumable=True, resume_guard=())
        if not config.overwrite:
            with pytest.raises(InputError, match="not a wb run"):
                run.start()
            continue
        with run:
            run.finish(rows_out=0)
    manifest = read_manifest(tmp_path / "yes")
    assert manifest["config"] == {"threshold": 0.8} and manifest["overwrite"] is True
    assert manifest["command"] == "wb x --overwrite"
    assert (tmp_path / "no" / "notes.txt").read_text() == "mine"


def test_a_run_resumes_with_other_run_options(tmp_path):
    """`overwrite` and `argv` say how a run was started, not what it computes: a resume may differ in them
    (and not in an option it records)."""
    from workbench.config import RunOptions, option

    @dataclass
    class Options(RunOptions):
        threshold: float = option(0.8, "a setting")

    with pytest.raises(RuntimeError):
        with RunDir(tmp_path / "r", "x", Options(argv=["wb", "x"]), resumable=True, resume_guard=("output",)) as run:
            (run.path / "ledger.txt").write_text("half the work")
            raise RuntimeError("killed")
    with pytest.raises(InputError, match="threshold=0.8 is here; resuming it with threshold=0.5"):
        RunDir(tmp_path / "r", "x", Options(threshold=0.5), resumable=True, resume_guard=("output",)).start()
    with RunDir(tmp_path / "r", "x", Options(overwrite=True, argv=["wb", "x", "--overwrite"]), resumable=True,
                resume_guard=("output",)) as run:
        assert run.finish(rows_out=0)["command"] == "wb x --overwrite"


def _hold_run(out, tmp_path):
    """A `wb`-like process that starts a run in `out`, stages a temporary file, and waits to be killed."""
    import subprocess
    import sys

    script = ("import sys, time; from workbench.rundir import RunDir; r = RunDir(sys.argv[1], 'test').start(); "
              "(r.path / '.data.parquet.staged').write_text('mine'); print('ready', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", script, str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_a_second_run_on_a_locked_directory_fails_naming_the_holder_and_touches_nothing(tmp_path):
    out = tmp_path / "run"
    proc = _hold_run(out, tmp_path)
    try:
        with pytest.raises(InputError, match=rf"run: another run is writing this directory \(pid {proc.pid}\)"):
            RunDir(out, "test").start()
        with pytest.raises(InputError, match=rf"pid {proc.pid}"):
            _finished(out, [1])
        # the holder's staged file and marker survive the second run's attempts
        assert (out / ".data.parquet.staged").read_text() == "mine" and (out / INCOMPLETE).exists()
    finally:
        proc.kill()
        proc.wait()
    _finished(out, [2])  # SIGKILL left no stale lock: the next run takes the directory
    assert sorted(p.name for p in out.iterdir()) == ["data.parquet", "manifest.json", "progress.json"]
    assert read_manifest(out)["rows_out"] == 1


def test_two_runs_in_one_process_exclude_each_other_and_a_refused_directory_is_left_as_found(tmp_path):
    out = tmp_path / "run"
    first = RunDir(out, "test").start()
    with pytest.raises(InputError, match=r"another run is writing this directory"):
        RunDir(out, "test").start()
    first.finish(rows_out=0)
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "a.jpg").write_text("x")
    with pytest.raises(InputError, match="not a wb run"):
        RunDir(foreign, "test").start()
    assert [p.name for p in foreign.iterdir()] == ["a.jpg"]


def test_wb_curate_on_a_directory_another_run_holds_is_a_one_line_error(tmp_path, capsys):
    from workbench.cli import main

    src = tmp_path / "a.jsonl"
    src.write_text("".join(f'{{"text": "row {i} with some words"}}\n' for i in range(20)))
    out = tmp_path / "X"
    proc = _hold_run(out, tmp_path)
    try:
        assert main(["curate", str(src), "--output", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (f"wb curate: error: {out}: another run is writing this directory (pid {proc.pid}); wait for "
                       "it to end, stop it, or choose another output directory")
        assert (out / ".data.parquet.staged").read_text() == "mine" and (out / INCOMPLETE).exists()
    finally:
        proc.kill()
        proc.wait()
