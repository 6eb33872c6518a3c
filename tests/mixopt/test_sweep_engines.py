"""Proxy sweeps past one process: Ray tasks equal the local engine on a two-node loopback cluster (which
loses its worker node midway), shards merge into the whole sweep (and refuse missing, repeated or
mismatched shards), a SIGKILLed driver resumes to the same results, two sweeps cannot write one
directory, and the quick fit's rank correlation is recorded as the proxies finish."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mixopt.api import merge_shards
from mixopt.plan import PlanConfig, make_plan
from mixopt.proxy import ProxyConfig
from mixopt.sweep import run_sweep
from tests.ray_cluster import two_node_cluster
from workbench.errors import InputError
from workbench.rundir import DirLock

ROOT = Path(__file__).resolve().parents[2]
SMALL = ProxyConfig(tokens_per_run=4_096, context=32, batch_size=8, eval_tokens=512)
def quiet(*_args, **_kwargs):
    pass


@pytest.fixture(scope="module")
def domains(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("domains")
    rng = np.random.default_rng(0)
    words = {"a": ["alpha", "beta", "gamma"], "b": ["one", "two", "three", "four"], "c": ["x = 1", "y = x + 2"]}
    for name, vocab in words.items():
        rows = [{"text": " ".join(rng.choice(vocab, size=40))} for _ in range(80)]
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "target.jsonl").write_text(json.dumps({"text": "alpha beta one two " * 20}) + "\n")
    path = folder / "domains.yaml"
    path.write_text("domains:\n  a: a.jsonl\n  b: b.jsonl\n  c: c.jsonl\nvalidation:\n  target: target.jsonl\n"
                    "heldout_fraction: 0.1\nmax_epochs: 50\n")
    return path


def plan(domains: Path, path: Path, runs: int, tokens: int = 4_096) -> Path:
    make_plan(domains, path, PlanConfig(runs=runs, tokens_per_run=tokens))
    return path


def metrics(rows: list[dict]) -> dict[str, tuple]:
    return {r["run_id"]: (r["status"], r["w.a"], r["bpb.target"], r["bpb.a"]) for r in rows}


def same_results(left: list[dict], right: list[dict]) -> None:
    assert sorted(metrics(left)) == sorted(metrics(right))
    for run_id, (status, w, target, a) in metrics(left).items():
        other = metrics(right)[run_id]
        assert status == other[0] == "ok" and w == other[1]
        assert target == pytest.approx(other[2], abs=1e-6) and a == pytest.approx(other[3], abs=1e-6)


def test_shards_merge_into_the_whole_sweep_and_refuse_bad_sets(tmp_path, domains):
    whole = run_sweep(plan(domains, tmp_path / "whole", 4), SMALL, workers=1, log=quiet)
    p = plan(domains, tmp_path / "p", 4)
    with pytest.raises(InputError, match=r"no shards in .*shards; run `wb mix run .* --shard i/n`"):
        merge_shards(p)
    lines = []
    run_sweep(p, SMALL, shard="0/2", log=lines.append)
    assert lines[0].startswith("shard 0/2: 0 of 2 proxies already trained; training 2")
    assert pq.read_table(p / "shards" / "0-of-2" / "results.parquet")["run_id"].to_pylist() == [
        "run-0000", "run-0002"]
    with pytest.raises(InputError, match=r"shard 1/2 is missing \(1 of 2 shards not found\)"):
        merge_shards(p)
    run_sweep(p, SMALL, shard="1/2", limit=1, log=quiet)
    with pytest.raises(InputError, match=r"shard 1/2 lacks 1 of its proxies \(run-0003 \.\.\.\); re-run"):
        merge_shards(p)
    run_sweep(p, SMALL, shard="1/2", log=quiet)  # resumes the shard
    zero = p / "shards" / "0-of-2" / "results.parquet"
    with pytest.raises(InputError, match=r"shard 0/2 is given twice"):
        merge_shards(p, [zero, zero])
    table = pq.read_table(zero)
    meta = dict(table.schema.metadata)
    for key, value, message in (("shard", b"0/3", r"the shards disagree on their count \(0/3, 1/2\)"),
                                ("plan", b"0123456789abcdef", r"shard 0/2 is of another plan"),
                                ("sweep", json.dumps({**json.loads(meta[b"sweep"]), "lr": 1.0}).encode(),
                                 r"shard 0/2 was trained with lr=1.0, not 0.003")):
        pq.write_table(table.replace_schema_metadata({**meta, key.encode(): value}), tmp_path / "odd.parquet")
        with pytest.raises(InputError, match=message):
            merge_shards(p, [tmp_path / "odd.parquet", p / "shards" / "1-of-2"])
    with pytest.raises(InputError, match=r"--shard '2/2': expected i/n with 0 <= i < n"):
        run_sweep(p, SMALL, shard="2/2", log=quiet)
    from workbench.cli import main

    assert main(["mix", "merge", str(p)]) == 0
    merged = pq.read_table(p / "results.parquet").to_pylist()
    same_results(merged, whole)
    assert main(["mix", "merge", str(p)]) == 0  # merging again changes nothing
    assert pq.read_table(p / "results.parquet").to_pylist() == merged


def test_a_second_sweep_on_one_directory_is_refused(tmp_path, domains):
    p = plan(domains, tmp_path / "p", 2)
    lock = DirLock(p, "mix-run")
    try:
        with pytest.raises(InputError, match=r"another run is writing this directory \(pid \d+\)"):
            run_sweep(p, SMALL, log=quiet)
        with pytest.raises(InputError, match="another run is writing this directory"):
            merge_shards(p)
    finally:
        lock.release()
    with pytest.raises(InputError, match="--ray-address needs --engine ray"):
        run_sweep(p, SMALL, ray_address="127.0.0.1:1", log=quiet)
    assert not (p / "results.parquet").exists()


@pytest.mark.slow  # a `wb mix run` process killed mid-sweep (~10 s on 2 cores)
def test_a_sigkilled_driver_costs_only_the_proxies_in_flight(tmp_path, domains):
    p = plan(domains, tmp_path / "p", 5, tokens=8_192)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "workbench.cli", "mix", "run", str(p), "--workers", "1", "--context", "32",
            "--batch-size", "8", "--eval-tokens", "512"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = p / "results.parquet"
    deadline = time.time() + 240
    try:
        while not results.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    kept = pq.read_table(results).to_pylist()
    assert 1 <= len(kept) < 5
    for _ in range(100):  # the pool's worker notices its parent is gone and exits; the lock goes with them
        try:
            DirLock(p, "probe").release()
            break
        except InputError:
            time.sleep(0.1)
    lines = []
    resumed = run_sweep(p, ProxyConfig(tokens_per_run=8_192, context=32, batch_size=8, eval_tokens=512),
                        workers=1, log=lines.append)
    assert lines[0].startswith(f"{len(kept)} of 5 proxies already trained; training {5 - len(kept)}")
    assert len(resumed) == 5 and all(r["status"] == "ok" for r in resumed)
    before = {r["run_id"]: r for r in kept}
    assert all(metrics([r])[r["run_id"]] == metrics([before[r["run_id"]]])[r["run_id"]]
               for r in resumed if r["run_id"] in before)  # finished proxies are kept, not retrained
    progress = json.loads((p / "progress.json").read_text())
    assert progress["state"] == "complete" and progress["done"] == 5


@pytest.fixture(scope="module")
def cluster():
    """A head and a worker node, one CPU each, on 127.0.0.1."""
    pytest.importorskip("ray", reason="the ray extra (pip install 'post-training-workbench[ray]')")
    with two_node_cluster(store_mb=100) as c:
        yield c


@pytest.mark.slow  # a two-node Ray cluster (~25 s on 2 cores); it loses its worker node midway
def test_ray_sweep_equals_the_local_one(tmp_path, domains, cluster):
    local = run_sweep(plan(domains, tmp_path / "local", 4), SMALL, workers=1, log=quiet)
    p = plan(domains, tmp_path / "ray", 4)
    run_sweep(p, SMALL, limit=1, log=quiet)  # one proxy trained earlier, locally: Ray trains the other three
    lines = []

    def lose_the_worker_node(line: str) -> None:  # after the first result: a task may be running there
        lines.append(line)
        if line.startswith("[1/"):
            cluster.remove_node(cluster.worker)

    on_ray = run_sweep(p, SMALL, engine="ray", ray_address=cluster.address, log=lose_the_worker_node)
    assert lines[0].startswith("1 of 4 proxies already trained; training 3") and "on Ray" in lines[0]
    same_results(on_ray, local)  # a task lost with its node was retried on the head
    same_results(pq.read_table(p / "results.parquet").to_pylist(), local)
    (p / "results.parquet").unlink()
    with pytest.raises(InputError, match=r"--gpus-per-proxy 0.25: the Ray cluster has 0 GPUs"):
        run_sweep(p, SMALL, engine="ray", ray_address=cluster.address, gpus_per_proxy=0.25, log=quiet)


def test_shard_table_metadata_survives_the_atomic_writer(tmp_path):
    from mixopt.results import write_results

    write_results(tmp_path, [{"run_id": "run-0000", "w.a": 1.0, "status": "ok"}], ["a"], {"shard": "0/1"})
    assert pq.read_table(tmp_path / "results.parquet").schema.metadata[b"shard"] == b"0/1"


def test_the_fit_curve_grows_with_the_finished_proxies(tmp_path):
    from mixopt.curve import FitCurve
    from workbench.io import write_table

    rng = np.random.default_rng(0)
    weights = rng.dirichlet(np.ones(3), size=30)
    loss = ((weights - np.array([0.2, 0.5, 0.3])) ** 2).sum(axis=1)  # a bowl: more runs, better ranks
    curve = FitCurve(tmp_path, ["a", "b", "c"])
    for n in range(1, 31):
        write_table(pa.table({"run_id": [f"run-{i:04d}" for i in range(n)], "status": ["ok"] * n,
                              **{f"w.{d}": weights[:n, j] for j, d in enumerate("abc")}, "bpb.t": loss[:n]}),
                    tmp_path / "results.parquet")
        curve.add(n, final=n == 30)
    saved = json.loads((tmp_path / "fit_curve.json").read_text())["points"]
    assert [p["proxies"] for p in saved] == [8, 12, 18, 27, 30]  # each time they grew by half, and at the end
    assert saved[-1]["targets"] == ["bpb.t"] and saved[-1]["runs"] == 30
    assert saved[-1]["lightgbm"] > 0.5 and saved[-1]["lightgbm"] > saved[0]["lightgbm"]
    assert FitCurve(tmp_path, ["a", "b", "c"]).points == saved  # a resumed sweep continues the curve
