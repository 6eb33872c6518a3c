"""Distillation over several client hosts: `--shard i/n` and `wb distill --merge RUN...`.

Each host runs the same command with its own `--shard i/n` and output directory: it loads (and curates)
every prompt, keeps those whose id hashes to shard i (a stable hash, the same on every host), and
generates them into its own run with its own ledger, so a host that dies resumes alone. `merge_shards`
checks that the runs are the n finished shards of one job (same run key, each shard once) and writes one
run with exactly one row per unit: data.parquet, sft.parquet and a manifest that sums the shards' usage.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from workbench.config import RunOptions
from workbench.errors import InputError
from workbench.io import write_table
from workbench.rundir import RunDir, RunResult, Usage, read_manifest
from workbench.runfiles import PRODUCT, SFT

_STATUSES = ("ok", "truncated", "failed")


def parse_shard(value: str) -> tuple[int, int]:
    """(index, count) from "i/n" with 0 <= i < n; raise `InputError` otherwise."""
    index, sep, count = value.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if not sep or n < 1 or not 0 <= i < n:
        raise InputError(f"--shard {value!r}: expected i/n with 0 <= i < n, e.g. 0/4")
    return i, n


def shard_of(prompt_ids: list[str], count: int) -> np.ndarray:
    """The shard of each prompt id: the first 8 bytes of its SHA-256 modulo `count` (stable everywhere)."""
    keys = [int.from_bytes(hashlib.sha256(p.encode()).digest()[:8], "little") for p in prompt_ids]
    return np.array(keys, dtype=np.uint64) % np.uint64(count)


def select_shard(prompts: pa.Table, shard: str) -> pa.Table:
    """The rows of `prompts` that belong to `shard` ("i/n")."""
    i, n = parse_shard(shard)
    return prompts.filter(pa.array(shard_of(prompts.column("prompt_id").to_pylist(), n) == i))


def merge_shards(runs: list[str], output: str, think_format: str | None = None,
                 options: RunOptions | None = None) -> RunResult:
    """Combine the finished shard runs of one distillation into the run directory `output` (written as
    `options` say): one row per unit (no unit is in two shards; if one is, the ok or truncated row wins over
    a failed one). Raise `InputError` when a run is unfinished, not a shard, from another job, repeated, or
    a shard is missing."""
    if not runs:
        raise InputError("--merge needs the shard run directories")
    manifests = [_shard_manifest(r) for r in runs]
    first = manifests[0]
    count = first["shard"]["count"]
    seen: dict[int, str] = {}
    for run, m in zip(runs, manifests, strict=True):
        if m["run_key"] != first["run_key"]:
            raise InputError(f"{run}: run key {m['run_key']} differs from {runs[0]}'s {first['run_key']} (another "
                             "model, sampling or template): only shards of one job merge")
        if m["shard"]["count"] != count:
            raise InputError(f"{run}: shard {m['shard']['index']}/{m['shard']['count']} is not one of {count}")
        index = m["shard"]["index"]
        if index in seen:
            raise InputError(f"{run}: shard {index}/{count} is also {seen[index]}")
        seen[index] = run
    missing = [f"{i}/{count}" for i in range(count) if i not in seen]
    if missing:
        raise InputError(f"shard(s) {', '.join(missing)} missing: run `wb distill ... --shard {missing[0]}` on "
                         "the same prompts and pass its run directory too")
    data = _one_row_per_unit(pa.concat_tables([pq.read_table(Path(r) / PRODUCT) for r in runs],
                                              promote_options="default"))
    fmt = think_format or first["config"].get("think_format", "think-tags")
    from llm.records import sft_table

    # the shards' options (verify, model...) stay readable downstream, e.g. by `wb train sft --data RUN`
    config = {**first["config"], "shard": None, "output": str(output), "merge": list(runs), "think_format": fmt}
    options = options or RunOptions()
    with RunDir(output, "distill", config,
                inputs=[{"run": str(r), "shard": f"{m['shard']['index']}/{count}"}
                        for r, m in zip(runs, manifests, strict=True)],
                overwrite=options.overwrite, argv=options.argv) as run:
        write_table(data, run.product)
        sft = sft_table(data, fmt)
        write_table(sft, Path(run.path) / SFT)
        usage = Usage()
        for m in manifests:
            usage.add(Usage(**{k: v for k, v in m["usage"].items() if k in Usage.__dataclass_fields__}))
        status = data.column("status")
        counts = {s: int(pc.sum(pc.equal(status, s)).as_py() or 0) for s in _STATUSES}
        verified = data.column("verified")
        verdicts = {"true": int(pc.sum(pc.equal(verified, True)).as_py() or 0),
                    "false": int(pc.sum(pc.equal(verified, False)).as_py() or 0), "null": verified.null_count}
        return run.finish(rows_in=sum(m["shard"]["prompts"] for m in manifests) + sum(first["dropped"].values()),
                          rows_out=data.num_rows, dropped=first["dropped"], usage=usage, run_key=first["run_key"],
                          units=data.num_rows, status_counts=counts, verified_counts=verdicts, sft_rows=sft.num_rows,
                          merged_from=[{"run": str(r), "shard": m["shard"]} for r, m in zip(runs, manifests, strict=True)])


def _shard_manifest(run: str) -> dict:
    manifest = read_manifest(run)  # raises for an unfinished (killed) shard, naming the command to resume it
    if manifest.get("stage") != "distill" or not isinstance(manifest.get("shard"), dict):
        raise InputError(f"{run}: not a `wb distill --shard i/n` run")
    return manifest


def _one_row_per_unit(data: pa.Table) -> pa.Table:
    """Keep one row per (prompt_id, sample_index): the first finished one, else the first failed one."""
    rank = pc.if_else(pc.equal(data.column("status"), "failed"), 1, 0)
    order = pa.array(np.arange(data.num_rows), pa.int64())
    keyed = data.select(["prompt_id", "sample_index"]).append_column("_rank", rank).append_column("_order", order)
    best = keyed.sort_by([("_rank", "ascending"), ("_order", "ascending")])
    ids, samples = best.column("prompt_id").to_pylist(), best.column("sample_index").to_pylist()
    seen: set[tuple[str, int]] = set()
    keep = []
    for key, row in zip(zip(ids, samples, strict=True), best.column("_order").to_pylist(), strict=True):
        if key not in seen:
            seen.add(key)
            keep.append(row)
    return data.take(pa.array(sorted(keep), pa.int64()))
