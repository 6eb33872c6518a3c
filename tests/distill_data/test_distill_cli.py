"""`wb distill` from the command line: a real run, resume output, and one-line errors on bad input."""

from __future__ import annotations

import json

import polars as pl

from workbench.cli import main
from workbench.rundir import read_manifest


def test_cli_run_and_bad_input(tmp_path, mock, capsys):
    src = tmp_path / "q.jsonl"
    src.write_text("".join(json.dumps({"question": f"cli {i}", "answer": "#### 1"}) + "\n" for i in range(3)))
    out = tmp_path / "run"
    code = main(["distill", str(src), "--output", str(out), "--model", "mock", "--base-url", mock.url,
                 "--prompt-field", "question", "--n", "2", "--progress-seconds", "0.01"])
    assert code == 0 and pl.read_parquet(out / "data.parquet").height == 6
    assert read_manifest(out)["backend"] == "openai"  # --base-url without --backend: HTTP
    captured = capsys.readouterr()
    assert "6 units: 6 ok" in captured.out and "done 6/6" in captured.err and "req/s" in captured.err

    assert main(["distill", str(src), "--output", str(tmp_path / "x"), "--model", "m", "--base-url", mock.url]) == 2
    err = capsys.readouterr().err
    assert "no column 'prompt'" in err and "try --prompt-field question" in err
    assert main(["distill", str(src), "--output", str(tmp_path / "y"), "--model", "m", "--prompt-field",
                 "question"]) == 2
    assert "--model 'm': not a local model directory; to call a served model give --base-url" in \
        capsys.readouterr().err
    assert main(["distill", str(src), "--output", str(tmp_path / "z"), "--model", "m", "--base-url", mock.url,
                 "--prompt-field", "question", "--verify", "math"]) == 2
    assert "--answer-field" in capsys.readouterr().err
