"""`--engine ray` gives the local engine's output (same kept rows, removed rows, reasons and counts), on a
two-node `ray.cluster_utils.Cluster` on loopback."""

from __future__ import annotations

import json

import polars as pl
import pytest
from curate_corpus import make_docs, mutate, write_jsonl

from curate.api import curate, deduplicate
from curate.config import CurateConfig
from curate.dedup import DedupConfig
from tests.ray_cluster import two_node_cluster
from workbench.errors import InputError

ray = pytest.importorskip("ray", reason="the ray extra (pip install 'post-training-workbench[ray]')")

@pytest.fixture(scope="module")
def cluster():
    """A head and a worker node, one CPU and a bounded object store each, all on 127.0.0.1."""
    with two_node_cluster(store_mb=150) as c:
        yield c


def _corpus(tmp_path):
    """Four files (four blocks): exact and near duplicates across files, a short row, PII, a leaked
    benchmark item."""
    from workbench.workspace import bundled_data_dir

    docs = make_docs(60)
    gsm = json.loads((bundled_data_dir() / "gsm8k" / "test.jsonl").read_text().splitlines()[3])
    folder = tmp_path / "corpus"
    folder.mkdir()
    extra = [docs[0], mutate(docs[1], 2, seed=1), mutate(docs[1], 3, seed=2), "too short",
             "Mail me at someone@example.com. " + docs[2][:300], gsm["question"] + " " + gsm["answer"],
             docs[40], mutate(docs[41], 1, seed=3)]
    rows = [{"text": t} for t in docs + extra]
    for part in range(4):
        write_jsonl(folder / f"part{part}.jsonl", rows[part::4])
    return folder


def _same(a, b) -> None:
    for name in ("data.parquet", "removed.parquet"):
        left, right = pl.read_parquet(a.path / name), pl.read_parquet(b.path / name)
        assert left.equals(right), name
    for key in ("rows_in", "rows_out", "dropped"):
        assert a[key] == b[key], key


@pytest.mark.slow
def test_curate_and_dedup_on_ray_equal_local(tmp_path, cluster):
    src = _corpus(tmp_path)
    config = CurateConfig(filters=["length"], pii="redact")
    config.filter_settings.length.min_words = 5
    local = curate(config, [src], tmp_path / "local")
    on_ray = curate(config, [src], tmp_path / "ray", engine="ray", ray_address=cluster.address)
    _same(local, on_ray)
    assert set(local["dropped"]) == {"exact_duplicate", "near_duplicate", "length:min_words",
                                     "contaminated:gsm8k_test"}
    assert local["dropped"]["near_duplicate"] == 3 and on_ray["engine"] == "ray"
    for name, stats in local["steps"].items():
        assert {k: v for k, v in on_ray["steps"][name].items() if k != "seconds"} == \
               {k: v for k, v in stats.items() if k != "seconds"}
    assert on_ray["contamination"] == local["contamination"]
    assert on_ray["dedup"]["candidate_pairs"] == local["dedup"]["candidate_pairs"]
    kept = pl.read_parquet(on_ray.path / "data.parquet")
    assert any("<EMAIL>" in t for t in kept["text"])  # the redactor ran in the workers

    dedup = DedupConfig(keep="longest")
    local = deduplicate(dedup, [src], tmp_path / "dlocal")
    on_ray = deduplicate(dedup, [src], tmp_path / "dray", engine="ray", ray_address=cluster.address)
    _same(local, on_ray)
    assert local["dropped"] == {"exact_duplicate": 2, "near_duplicate": 3}
    with pytest.raises(InputError, match="--against runs on the local engine"):
        deduplicate(DedupConfig(against=str(local.path)), [src], tmp_path / "x", engine="ray")
    with pytest.raises(InputError, match="--ray-address needs --engine ray"):
        deduplicate(dedup, [src], tmp_path / "x", ray_address=cluster.address)


def test_missing_ray_names_the_install_command(tmp_path, monkeypatch):
    import sys

    src = write_jsonl(tmp_path / "a.jsonl", [{"text": "one two three four five six"}])
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(InputError, match=r"--engine ray needs Ray: pip install 'post-training-workbench\[ray\]'"):
        deduplicate(DedupConfig(), [src], tmp_path / "out", engine="ray")
    with pytest.raises(InputError, match="--engine 'spark'"):
        deduplicate(DedupConfig(), [src], tmp_path / "out", engine="spark")
