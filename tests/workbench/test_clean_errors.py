"""Bad inputs that used to end in "internal error" or pass silently (issue 26 item 10): each is one line
naming the file, field or flag, exit 2 (or, where the input was fine but the work failed, exit 1)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.mixopt.test_mixopt import FAST_FIT, quiet, synthetic_results
from tests.net import free_port
from workbench.cli import main
from workbench.io import write_table
from workbench.rundir import RunDir
from workbench.runfiles import FIT, MANIFEST, PRODUCT, run_state


@pytest.fixture(scope="module")
def fit_dir(tmp_path_factory):
    from mixopt.fit import run_fit

    root = tmp_path_factory.mktemp("fit")
    run_fit(synthetic_results(root / "results.parquet"), root / "fit", FAST_FIT(target=["loss"]), log=quiet)
    return root / "fit"


def _eval_run(path, rows=2):
    with RunDir(path, "eval") as run:
        write_table(pa.table({"benchmark": ["b"] * rows, "item_id": [str(i) for i in range(rows)],
                              "correct": [True] * rows}), run.product)
        run.finish(rows_out=rows)
    return path


def _lineage_run(path, manifest: bytes):
    path.mkdir()
    (path / MANIFEST).write_bytes(manifest)
    return path


def _case(name, tmp, fit_dir):
    """argv and the start of the expected error, for bad input `name`, built in `tmp`."""
    (tmp / "a.jsonl").write_text("".join(json.dumps({"text": f"row {i} " * (i + 1)}) + "\n" for i in range(5)))
    if name == "select --seed -1":
        return ["select", str(tmp / "a.jsonl"), "--strategy", "random", "--keep", "2", "--seed", "-1", "--output",
                str(tmp / "s")], "--seed -1: must be at least 0"
    if name.startswith("eval --compare"):
        a, b = _eval_run(tmp / "a"), _eval_run(tmp / "b")
        if "missing" in name:
            (b / PRODUCT).unlink()
            return ["eval", "--compare", str(a), str(b)], f"{b / PRODUCT}: missing"
        (b / PRODUCT).write_bytes(b"not parquet at all")
        return ["eval", "--compare", str(a), str(b)], f"{b / PRODUCT}: not a readable parquet file"
    if name.startswith("eval --backend hf"):
        model = tmp / "model.bin"
        model.write_text("weights?") if "file" in name else model.mkdir()
        what = "a file" if "file" in name else "a directory without config.json"
        return ["eval", "--backend", "hf", "--model", str(model), "--benchmark", "gsm8k", "--output",
                str(tmp / "e")], f"--model '{model}': is {what}, not a transformers model directory"
    if name.startswith("mix predict"):
        weights = np.full((3, 3), 1 / 3)
        table = {f"w.{d}": list(weights[:, j]) for j, d in enumerate("abc")}
        fit = tmp / "fit"
        shutil.copytree(fit_dir, fit)
        if name == "mix predict string weights":
            table["w.b"] = ["a third"] * 3
        else:
            content = {"binary fit.json": bytes(range(256)), "fit.json list": b"[1]",
                       "fit.json without weight columns": b"{}",
                       "fit.json with text coefficients": json.dumps({**json.loads((fit / FIT).read_text()),
                                                                      "linear_coef": ["x", "y", "z"]}).encode()}
            (fit / FIT).write_bytes(content[name.removeprefix("mix predict ")])
        write_table(pa.table(table), tmp / "new.parquet")
        expected = {"mix predict string weights": f"{tmp / 'new.parquet'}: weight column 'w.b' holds string",
                    "mix predict binary fit.json": f"{fit / FIT}: not valid JSON",
                    "mix predict fit.json list": f"{fit / FIT}: expected a JSON object; found list",
                    "mix predict fit.json without weight columns": f"{fit / FIT}: field `weight_columns`",
                    "mix predict fit.json with text coefficients": f"{fit / FIT}: field `linear_coef` must be 3 numbers"}
        return ["mix", "predict", str(fit), str(tmp / "new.parquet")], expected[name]
    if name.startswith("lineage"):
        content = {"lineage list manifest": b"[1, 2]", "lineage binary manifest": bytes(range(256)),
                   "lineage inputs not a list": b'{"stage": "curate", "inputs": 5}'}[name]
        run = _lineage_run(tmp / "r", content)
        expected = {"lineage list manifest": "expected a JSON object; found list",
                    "lineage binary manifest": "not valid JSON",
                    "lineage inputs not a list": "field `inputs` is int; expected a list"}[name]
        return ["lineage", str(run), "x"], f"{run / MANIFEST}: {expected}"
    raise AssertionError(name)


BAD = ["select --seed -1", "eval --compare missing data.parquet", "eval --compare corrupt data.parquet",
       "eval --backend hf on a file", "eval --backend hf on a directory", "mix predict string weights",
       "mix predict binary fit.json", "mix predict fit.json list", "mix predict fit.json without weight columns",
       "mix predict fit.json with text coefficients", "lineage list manifest", "lineage binary manifest",
       "lineage inputs not a list"]


@pytest.mark.parametrize("name", BAD)
def test_bad_input_is_a_one_line_exit_2_error(name, tmp_path, fit_dir, capsys):
    argv, message = _case(name, tmp_path, fit_dir)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "internal error" not in err, err
    assert message in err, err


def test_select_keep_fraction_of_one_row_keeps_it(tmp_path, capsys):
    (tmp_path / "one.jsonl").write_text(json.dumps({"text": "the only row"}) + "\n")
    assert main(["select", str(tmp_path / "one.jsonl"), "--keep", "0.5", "--output", str(tmp_path / "s")]) == 0
    assert "1 rows in, 1 kept" in capsys.readouterr().out
    assert pq.read_table(tmp_path / "s" / PRODUCT).num_rows == 1


def test_difficulty_select_with_an_unreachable_judge_fails(tmp_path, capsys):
    (tmp_path / "q.jsonl").write_text("".join(json.dumps({"question": f"what is {i}+1"}) + "\n" for i in range(3)))
    rc = main(["select", str(tmp_path / "q.jsonl"), "--keep", "1", "--strategy", "difficulty", "--field", "question",
               "--judge-model", "m", "--judge-base-url", f"http://127.0.0.1:{free_port()}/v1", "--max-attempts", "2",
               "--retry-base", "0.05", "--output", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("wb select: error: no question could be rated (3 of 3; first: judge failed:")
    st = run_state(tmp_path / "s")
    assert st.state == "failed" and st.error.startswith("no question could be rated")
    assert not (tmp_path / "s" / PRODUCT).exists()
