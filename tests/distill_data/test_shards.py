"""`--shard i/n` on several client hosts and `wb distill --merge`: one row per unit, a killed shard resumes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from distill_data.pipeline import distill
from distill_data.shards import merge_shards, parse_shard, shard_of
from tests.distill_data.distill_helpers import fast_config, write_prompts
from workbench.errors import InputError

ROOT = Path(__file__).resolve().parents[2]


def test_parse_and_hash_are_stable():
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(InputError, match="expected i/n"):
            parse_shard(bad)
    ids = [str(i) for i in range(1000)]
    parts = shard_of(ids, 3)
    assert parts.tolist()[:8] == shard_of(ids[:8], 3).tolist()  # per id, not per batch
    assert sorted(set(parts.tolist())) == [0, 1, 2] and min((parts == k).sum() for k in range(3)) > 280


def test_shards_cover_every_unit_once_and_merge(tmp_path, mock):
    src = write_prompts(tmp_path / "p.jsonl", [f"shard {i}" for i in range(30)])
    runs = []
    for i in range(3):
        out = tmp_path / f"s{i}"
        m = distill(fast_config(src, out, mock.url, n=2, shard=f"{i}/3"))
        assert m["shard"]["index"] == i and m["units"] == 2 * m["shard"]["prompts"]
        runs.append(str(out))
    parts = [set(pl.read_parquet(Path(r) / "data.parquet")["prompt_id"]) for r in runs]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set().union(*parts) == {str(i) for i in range(30)}
    with pytest.raises(InputError, match=r"shard\(s\) 2/3 missing"):
        merge_shards(runs[:2], str(tmp_path / "bad"))
    with pytest.raises(InputError, match="is also"):
        merge_shards([runs[0], runs[0], runs[1]], str(tmp_path / "bad"))
    merged = merge_shards(runs, str(tmp_path / "all"))
    df = pl.read_parquet(tmp_path / "all" / "data.parquet")
    assert df.height == 60 and df.select("prompt_id", "sample_index").n_unique() == 60
    assert merged["status_counts"] == {"ok": 60, "truncated": 0, "failed": 0} and merged["sft_rows"] == 60
    assert merged["usage"]["requests"] == 30  # native n: one request per prompt, summed over the shards
    assert pl.read_parquet(tmp_path / "all" / "sft.parquet").height == 60
    assert merged["config"]["model"] == "mock" and merged["config"]["merge"] == runs
    other = distill(fast_config(src, tmp_path / "t", mock.url, n=2, shard="0/3", temperature=0.1))
    with pytest.raises(InputError, match="run key"):
        merge_shards([other.path, runs[1], runs[2]], str(tmp_path / "bad"))


def _units(ledger: Path) -> int:
    try:
        with sqlite3.connect(ledger) as conn:
            return conn.execute("SELECT COUNT(*) FROM units").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_killed_shard_blocks_merge_until_resumed(tmp_path, mock):
    texts = [f"killshard {i} [slow:0.05]" for i in range(40)]
    src = write_prompts(tmp_path / "p.jsonl", texts)
    s0, s1 = tmp_path / "s0", tmp_path / "s1"
    distill(fast_config(src, s0, mock.url, shard="0/2"))
    cmd = [sys.executable, "-m", "workbench.cli", "distill", src, "--output", str(s1), "--model", "mock",
           "--base-url", mock.url, "--max-concurrency", "2", "--progress-seconds", "0", "--shard", "1/2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while _units(s1 / "ledger.sqlite") < 4 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert _units(s1 / "ledger.sqlite") >= 4, proc.stderr.read().decode()
    merge = [sys.executable, "-m", "workbench.cli", "distill", "--merge", str(s0), str(s1), "--output",
             str(tmp_path / "all")]
    done = subprocess.run(merge, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0 and "unfinished" in done.stderr and "--shard 1/2" in done.stderr
    distill(fast_config(src, s1, mock.url, shard="1/2", max_concurrency=2))  # the same shard resumes
    done = subprocess.run(merge, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "merged 2 shards: 40 units (40 ok" in done.stdout
    df = pl.read_parquet(tmp_path / "all" / "data.parquet")
    assert df.height == 40 and df["prompt_id"].n_unique() == 40 and set(df["status"]) == {"ok"}
