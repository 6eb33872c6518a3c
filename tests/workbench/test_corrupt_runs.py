"""One corrupt file in a workspace lists its run as unreadable (naming the file and field); the listing,
`wb runs`, `--usage` and the app's Runs page go on."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from workbench.cli import main
from workbench.io import write_table
from workbench.rundir import RunDir
from workbench.runs import list_runs

# run name -> (file, content) that once broke `wb runs` or the Runs page, and the start of the error
CORRUPT = {
    "empty-progress": ("progress.json", b"{}", "progress.json: expected `state` to be one of"),
    "binary-manifest": ("manifest.json", bytes(range(256)), "manifest.json: not valid JSON"),
    "list-manifest": ("manifest.json", b"[1, 2]", "manifest.json: expected a JSON object; found list"),
    "usage-list": ("manifest.json", b'{"stage": "x", "usage": [1]}', "manifest.json: field `usage` is list"),
    "text-pid": ("progress.json", b'{"state": "running", "pid": "abc"}', "progress.json: field `pid` is str"),
    "bad-job": (".wb-job.json", b'{"pid": 5, "argv": 3}', ".wb-job.json: field `argv` is int"),
    "text-cost": ("manifest.json", b'{"stage": "x", "usage": {"cost_usd": "free"}}',
                  "manifest.json: field `usage.cost_usd` is str"),
    "binary-progress": ("progress.json", b"\xf4\x00\x01", "progress.json: not valid JSON"),
}


def corrupt_workspace(root: Path) -> Path:
    """A finished run `good` beside one run per corruption in CORRUPT."""
    with RunDir(root / "good", "convert") as run:
        write_table(pa.table({"x": [1, 2]}), run.product)
        run.finish(rows_in=2, rows_out=2)
    for name, (file, content, _) in CORRUPT.items():
        (root / name).mkdir()
        (root / name / file).write_bytes(content)
    return root


def test_every_corrupt_run_is_listed_as_unreadable_with_its_file_and_field(tmp_path):
    runs = {r["name"]: r for r in list_runs(corrupt_workspace(tmp_path))}
    assert runs["good"]["state"] == "complete" and runs["good"]["rows_out"] == 2
    for name, (_, _, error) in CORRUPT.items():
        assert runs[name]["state"] == "unreadable", name
        assert runs[name]["error"].startswith(str(tmp_path / name / error)), runs[name]["error"]
    assert len(runs) == len(CORRUPT) + 1


def test_wb_runs_lists_a_corrupt_workspace_and_says_why(tmp_path, capsys):
    root = corrupt_workspace(tmp_path)
    assert main(["runs", str(root)]) == 0
    out = capsys.readouterr().out
    assert sum(" unreadable " in line for line in out.splitlines()) == len(CORRUPT)
    assert f"text-pid: unreadable: {root / 'text-pid' / 'progress.json'}: field `pid` is str" in out
    assert main(["runs", str(root), "--usage"]) == 0
    assert main(["runs", str(root), "--json"]) == 0
