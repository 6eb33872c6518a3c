"""Sharded proxy sweeps for clusters without Ray (a Slurm array, a few machines sharing a folder).

`wb mix run PLAN --shard i/n` trains the mixtures whose row in `mixtures.parquet` is i modulo n into
`PLAN/shards/<i>-of-<n>/results.parquet`; the table's schema metadata says which shard of which plan
(a fingerprint of its mixtures) it is and how its proxies were trained. `wb mix merge PLAN [SHARD ...]`
joins shards 0..n-1 into `PLAN/results.parquet` and refuses, in one line, a missing or unfinished shard,
a shard given twice, shards of different counts, plans or proxy settings.

    wb mix run runs/mix --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT
    wb mix merge runs/mix                     # or: wb mix merge runs/mix node*/shards/*
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from workbench.errors import InputError
from workbench.runfiles import MIXTURES, RESULTS, SWEEP, SWEEP_SHARDS, read_json

_SPEC = re.compile(r"^(\d+)/(\d+)$")


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0-based): the planned mixtures at rows index, index + count, ..."""

    index: int
    count: int

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    def of(self, mixtures: list[dict]) -> list[dict]:
        return mixtures[self.index::self.count]


def parse_shard(spec: str) -> Shard:
    """`i/n` as a `Shard`; raises `InputError` unless 0 <= i < n."""
    m = _SPEC.match(spec.strip())
    if not m or int(m.group(1)) >= int(m.group(2)):
        raise InputError(f"--shard {spec!r}: expected i/n with 0 <= i < n (e.g. 0/4 ... 3/4)")
    return Shard(int(m.group(1)), int(m.group(2)))


def shard_dir(plan_dir: Path, shard: Shard) -> Path:
    return plan_dir / SWEEP_SHARDS / f"{shard.index}-of-{shard.count}"


def plan_fingerprint(plan_dir: Path) -> str:
    """A digest of the planned run ids and weights: two shards of one plan agree on it."""
    table = pq.read_table(plan_dir / MIXTURES)
    return hashlib.sha256(json.dumps(table.to_pydict(), sort_keys=True).encode()).hexdigest()[:16]


def shard_metadata(plan_dir: Path, shard: Shard, config: object) -> dict[str, str]:
    """What a shard's results table records about itself (see the module docstring)."""
    from mixopt.proxy_runs import comparable

    return {"shard": shard.label, "plan": plan_fingerprint(plan_dir), "sweep": json.dumps(comparable(config))}


def _shard_tables(plan_dir: Path, paths: list[Path]) -> list[tuple[Path, dict, list[dict]]]:
    """(path, metadata, rows) of every shard results table under `paths` (default: PLAN/shards/*)."""
    if not paths:
        paths = sorted((plan_dir / SWEEP_SHARDS).glob("*"))
        if not paths:
            raise InputError(f"{plan_dir}: no shards in {plan_dir / SWEEP_SHARDS}; run `wb mix run {plan_dir} "
                             "--shard i/n` for every i first")
    found = []
    for path in paths:
        file = path / RESULTS if path.is_dir() else path
        if not file.exists():
            raise InputError(f"{path}: no {RESULTS} (a shard that has not finished a proxy yet?)")
        table = pq.read_table(file)
        meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
        if "shard" not in meta:
            raise InputError(f"{file}: not a shard's results table (no shard in its metadata)")
        found.append((file, meta, table.to_pylist()))
    return found


def merge_shards(plan_dir: str | Path, paths: list[str | Path] | None = None) -> tuple[list[dict], dict]:
    """The result rows of all shards joined with the plan's earlier results, and a summary; raises
    `InputError` naming the shard that is missing, repeated, unfinished or of another plan or setting."""
    plan_dir = Path(plan_dir)
    tables = _shard_tables(plan_dir, [Path(p) for p in paths or []])
    counts = {parse_shard(meta["shard"]).count for _, meta, _ in tables}
    if len(counts) > 1:
        raise InputError(f"the shards disagree on their count ({', '.join(m['shard'] for _, m, _ in tables)}); "
                         "merge the shards of one split")
    count = counts.pop()
    fingerprint = plan_fingerprint(plan_dir)
    # the plan's sweep.json, or (shards run on machines that did not share the plan folder) the first shard's
    recorded = read_json(plan_dir / SWEEP) or json.loads(tables[0][1].get("sweep", "{}"))
    where = plan_dir / SWEEP if (plan_dir / SWEEP).exists() else tables[0][0]
    mixtures = pq.read_table(plan_dir / MIXTURES).to_pylist()
    from mixopt.results import read_results

    earlier = {r["run_id"]: r for r in read_results(plan_dir)}
    by_index: dict[int, Path] = {}
    for file, meta, rows in tables:
        shard = parse_shard(meta["shard"])
        if shard.index in by_index:
            raise InputError(f"shard {shard.label} is given twice ({by_index[shard.index]} and {file})")
        by_index[shard.index] = file
        if meta.get("plan") != fingerprint:
            raise InputError(f"{file}: shard {shard.label} is of another plan (its mixtures differ from "
                             f"{plan_dir / MIXTURES})")
        sweep = json.loads(meta.get("sweep", "{}"))
        diff = sorted(k for k in set(sweep) | set(recorded) if sweep.get(k) != recorded.get(k))
        if diff:
            raise InputError(f"{file}: shard {shard.label} was trained with {diff[0]}={sweep.get(diff[0])!r}, "
                             f"not {recorded.get(diff[0])!r} as {where} says")
        have = {r["run_id"] for r in rows} | set(earlier)
        missing = [m["run_id"] for m in shard.of(mixtures) if m["run_id"] not in have]
        if missing:
            raise InputError(f"{file}: shard {shard.label} lacks {len(missing)} of its proxies ({missing[0]} ...); "
                             f"re-run `wb mix run {plan_dir} --shard {shard.label}` to finish it")
    absent = [f"{i}/{count}" for i in range(count) if i not in by_index]
    if absent:
        raise InputError(f"shard {absent[0]} is missing ({len(absent)} of {count} shards not found); run "
                         f"`wb mix run {plan_dir} --shard {absent[0]}` or name its results table")
    merged = dict(earlier)
    for _, _, rows in tables:
        merged.update({r["run_id"]: r for r in rows})
    summary = {"shards": count, "from_shards": sum(len(rows) for _, _, rows in tables), "earlier": len(earlier),
               "rows": len(merged), "failed": sum(r.get("status") != "ok" for r in merged.values())}
    summary["sweep"] = recorded
    return list(merged.values()), summary
