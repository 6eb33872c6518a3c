"""`wb mix plan --reuse RESULTS`: keep the proxies of an earlier sweep whose domains still apply.

Olmix (Ai2, 2026) reuses earlier proxy runs when the set of domains changes and reports 74% less compute.
A finished run applies to the new plan when every domain it trained on (weight > 0) is still a domain and
still holds the same data (same training bytes, when the earlier plan.json sits beside RESULTS), and its
mixture meets the new plan's constraints; its weight on a new domain is 0. Its metrics come along for the
domains and validation sets that are unchanged; a metric it cannot have (a new domain's bpb) stays empty
and `wb mix fit` leaves the reused run out of fits on that metric. The earlier sweep's proxy settings
(`sweep.json`) come along too, so `wb mix run` trains the new runs the same way.

`wb mix plan --reuse-mixture MIXTURE.json` is Olmix's mixture reuse proper: the domains whose data is
unchanged since that search keep its ratios and are searched as one virtual domain (`reused`), so the new
plan samples over the virtual domain plus the new and changed ones and needs the runs of that smaller
set; the proxies train on the real domains (the virtual weight split by the old ratios), and the search
writes its mixture over the real domains again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mixopt.results import weight_column
from mixopt.sampler import Constraints
from workbench.errors import InputError
from workbench.io import open_source
from workbench.runfiles import PLAN, RESULTS, SWEEP, read_json


@dataclass
class Reuse:
    """What an earlier sweep gives a new plan."""

    rows: list[dict]  # result rows in the new plan's columns, run_id "reuse-NNNN", reused_from set
    sweep: dict | None  # the earlier sweep's proxy settings
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> runs not reused
    changed: list[str] = field(default_factory=list)  # domains whose data differ from the earlier plan
    notes: list[str] = field(default_factory=list)


def load_reuse(results: str | Path, names: list[str], tokens: dict[str, dict], validation: list[dict],
               constraints: Constraints, tokens_per_run: int | None = None) -> Reuse:
    """The runs of `results` that apply to a plan of domains `names` with `tokens` and `validation` sets."""
    results = Path(results)
    table = open_source(results).read()
    columns = table.column_names
    old_domains = [c.removeprefix("w.") for c in columns if c.startswith("w.")]
    if len(old_domains) < 2 or "run_id" not in columns:
        raise InputError(f"--reuse {results}: not a sweep's results table (needs run_id and w.<domain> columns)")
    old_plan = read_json(results.parent / PLAN)
    notes = []
    if old_plan is None:
        notes.append(f"no {PLAN} beside {results}: domains are matched by name, their data is not compared")
    changed = sorted(d for d in set(old_domains) & set(names)
                     if old_plan and old_plan["tokens"].get(d, {}).get("train") != tokens[d]["train"])
    same_validation = {v["name"] for v in validation
                       if old_plan is None or v in old_plan.get("validation", [])}
    metrics = [c for c in columns if c.startswith("bpb.")
               and (c[4:] in names and c[4:] not in changed or c[4:] in same_validation)]
    sweep = read_json(results.parent / SWEEP)
    if sweep is None:
        notes.append(f"no {SWEEP} beside {results}: `wb mix run` cannot check that new runs match the reused ones")
    elif tokens_per_run and sweep.get("tokens_per_run") not in (None, tokens_per_run):
        notes.append(f"the reused proxies were trained on {sweep['tokens_per_run']:,} tokens each; plan with "
                     f"--tokens-per-run {sweep['tokens_per_run']} so that the new ones match")
    rows: list[dict] = []
    skipped: dict[str, int] = {}
    for row in table.to_pylist():
        used = {d for d in old_domains if (row[weight_column(d)] or 0) > 0}
        reason = None
        if row.get("status", "ok") != "ok":
            reason = "failed"
        elif used - set(names):
            reason = f"trained on a removed domain ({sorted(used - set(names))[0]})"
        elif used & set(changed):
            reason = f"trained on a changed domain ({sorted(used & set(changed))[0]})"
        else:
            weights = np.array([row.get(weight_column(d)) or 0.0 for d in names])
            if abs(weights.sum() - 1) > 0.01 or not constraints.satisfied(weights / weights.sum()):
                reason = "outside the new plan's constraints"
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        rows.append({"run_id": f"reuse-{len(rows):04d}", **{weight_column(d): float(w) for d, w in zip(
            names, weights / weights.sum(), strict=True)}, "status": "ok", "error": None,
            "reused_from": f"{results.resolve()}#{row['run_id']}",
            **{k: row.get(k) for k in ("train_loss", "tokens", "seconds")}, **{m: row[m] for m in metrics}})
    return Reuse(rows, sweep, skipped, changed, notes)


# --- mixture reuse through a virtual domain (`wb mix plan --reuse-mixture`) ----------------------------------

VIRTUAL = "reused"  # the name the old mixture's unchanged domains take together in the new plan


@dataclass
class VirtualDomain:
    """The domains unchanged since an earlier search, at that search's ratios, searched as one domain."""

    members: dict[str, float]  # unchanged domain -> its share of the virtual domain (sums to 1)
    source: str  # the earlier mixture.json
    changed: list[str]  # in both sets, with other data now: searched on their own
    added: list[str]  # new domains: searched on their own
    removed: list[str]  # gone from the new set: their weight is dropped and the rest renormalised
    earlier_runs: int  # finished proxies of the earlier sweep that the reused ratios stand on

    def as_plan(self) -> dict:
        return {"name": VIRTUAL, "members": self.members, "from": self.source, "changed": self.changed,
                "added": self.added, "removed": self.removed, "earlier_runs": self.earlier_runs}


def load_virtual(mixture_path: str | Path, names: list[str], tokens: dict[str, dict]) -> VirtualDomain:
    """The virtual domain a new plan of domains `names` (with `tokens`) gets from an earlier search's
    mixture.json; raises `InputError` when it names no earlier plan or fewer than 2 domains are unchanged."""
    path = Path(mixture_path)
    mixture = read_json(path) if path.is_file() else None
    weights = (mixture or {}).get("weights")
    if not isinstance(weights, dict) or not weights:
        raise InputError(f"--reuse-mixture {path}: not a mixture.json of `wb mix search` (no weights)")
    old_plan = read_json(Path(mixture.get("plan_dir") or path.parent) / PLAN)
    if old_plan is None:
        raise InputError(f"--reuse-mixture {path}: its plan directory ({mixture.get('plan_dir')}) has no {PLAN}, so "
                         "unchanged domains cannot be told from changed ones")
    if VIRTUAL in names:
        raise InputError(f"domain {VIRTUAL!r}: the name is taken by the virtual domain of --reuse-mixture; rename it")
    same = [n for n in names if n in weights and old_plan["tokens"].get(n, {}).get("train") == tokens[n]["train"]]
    total = sum(float(weights[n]) for n in same)
    if len(same) < 2 or total <= 0:
        raise InputError(f"--reuse-mixture {path}: {len(same)} domain(s) with weight are unchanged since that search "
                         f"({', '.join(same) or 'none'}); reuse needs at least 2, so plan afresh")
    results = Path(mixture.get("plan_dir") or path.parent) / RESULTS
    earlier = sum(r == "ok" for r in open_source(results).read()["status"].to_pylist()) if results.exists() else 0
    return VirtualDomain({n: float(weights[n]) / total for n in same}, str(path.resolve()),
                         [n for n in names if n in weights and n not in same], [n for n in names if n not in weights],
                         [n for n in weights if n not in names], earlier)
