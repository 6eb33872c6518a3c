"""`wb mix plan`: read the domains, split held-out text, store byte tokens, and sample proxy mixtures.

The plan directory holds everything later steps need: `plan.json` (domains, token counts, the natural
prior, constraints), `tokens/*.u8` (byte arrays for training and evaluation) and `mixtures.parquet`.

    wb mix plan examples/mixopt/domains.yaml --output runs/mix --runs 48
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from mixopt.domains import is_heldout, load_domains_file, read_texts, to_bytes
from mixopt.results import weight_column, write_results
from mixopt.sampler import Constraints, natural_prior, rounded_weights, sample_mixtures
from workbench.config import RunOptions, as_plain, option
from workbench.errors import InputError
from workbench.io import write_table
from workbench.rundir import RunDir, read_manifest
from workbench.runfiles import MIXTURES, PLAN, RESULTS, SWEEP, read_json, write_atomic


@dataclass
class PlanConfig(RunOptions):
    """How mixtures are sampled for the proxy sweep."""

    runs: int = option(0, "number of proxy mixtures to sample; 0 = max(48, 10 x domains) (Olmix: the runs "
                          "needed grow with the number of domains)", min=0)
    seed: int = option(42, "sampling seed (RegMix used 42)")
    temperature: float = option(0.5, "prior temperature: natural token distribution ** temperature")
    tokens_per_run: int = option(400_000, "proxy training tokens, used for the epoch cap", min=1)
    reuse: str = option("", "results.parquet of an earlier sweep: keep its finished proxies whose domains "
                            "still apply and sample only the rest (Olmix mixture reuse)")


def default_runs(domains: int) -> int:
    """Proxy runs for `domains` domains: 10 per domain, at least 48 (LightGBM cannot split on fewer)."""
    return max(48, 10 * domains)


def make_plan(domains_yaml: str | Path, output: str | Path, config: PlanConfig) -> dict:
    """Write a plan directory; return plan.json's content. Raises `InputError` on bad domains.

    With `config.reuse`, the earlier sweep's applicable runs join `mixtures.parquet` and `results.parquet`
    (so `wb mix run` skips them) and only max(runs - reused, 10 x new or changed domains) are sampled.
    """
    from mixopt.reuse import load_reuse

    spec = load_domains_file(domains_yaml)
    output = Path(output)
    if config.reuse and not Path(config.reuse).exists():
        raise InputError(f"--reuse {config.reuse}: no such results table")
    with RunDir(output, "mix-plan", config, inputs=[{"path": str(domains_yaml)}]) as run:
        (output / "tokens").mkdir(exist_ok=True)
        tokens: dict[str, dict] = {}
        for domain in spec.domains:
            texts = read_texts(domain)
            if len(texts) == 0:
                raise InputError(f"domain {domain.name!r}: its sources hold no text in field {domain.field!r}")
            held = is_heldout(texts, spec.heldout_fraction)
            if held.all() or not held.any():  # tiny domains: hold out the last document
                held = np.zeros(len(texts), bool)
                held[-1] = len(texts) > 1
            docs = np.array(texts.to_pylist(), dtype=object)
            train, valid = to_bytes(docs[~held].tolist()), to_bytes(docs[held].tolist())
            if len(train) == 0:
                raise InputError(f"domain {domain.name!r} has no training tokens")
            train.tofile(output / "tokens" / f"{domain.name}.train.u8")
            valid.tofile(output / "tokens" / f"{domain.name}.valid.u8")
            tokens[domain.name] = {"train": int(len(train)), "valid": int(len(valid)), "docs": int(len(texts))}
        for extra in spec.validation:
            texts = read_texts(extra)
            if len(texts) == 0:
                raise InputError(f"validation set {extra.name!r}: its sources hold no text")
            to_bytes(texts.to_pylist()).tofile(output / "tokens" / f"val.{extra.name}.u8")
        names = [d.name for d in spec.domains]
        prior = natural_prior({n: tokens[n]["train"] for n in names}, names)
        constraints = Constraints(names, spec.min_weight, spec.max_weight, spec.max_epochs,
                                  {n: tokens[n]["train"] for n in names}, config.tokens_per_run)
        runs = config.runs or default_runs(len(names))
        reuse = (load_reuse(config.reuse, names, tokens, [asdict(v) for v in spec.validation], constraints,
                            config.tokens_per_run) if config.reuse else None)
        for stale in (RESULTS, SWEEP):  # proxies of an earlier plan do not belong to this one
            (output / stale).unlink(missing_ok=True)
        fresh = runs
        if reuse:  # new and changed domains still need runs of their own
            covered = [n for n in names if n not in reuse.changed and any(r[weight_column(n)] > 0 for r in reuse.rows)]
            fresh = min(runs, max(runs - len(reuse.rows), 10 * (len(names) - len(covered))))
        mixtures = sample_mixtures(prior, fresh, constraints, np.random.default_rng(config.seed),
                                   temperature=config.temperature) if fresh else np.zeros((0, len(names)))
        ids = [f"run-{i:04d}" for i in range(len(mixtures))]
        weights = {weight_column(n): mixtures[:, j].tolist() for j, n in enumerate(names)}
        if reuse:
            ids += [r["run_id"] for r in reuse.rows]
            for n in names:
                weights[weight_column(n)] += [r[weight_column(n)] for r in reuse.rows]
            if reuse.rows:
                write_results(output, reuse.rows, names)
            if reuse.sweep is not None:
                write_atomic(output / SWEEP, reuse.sweep)
        write_table(pa.table({"run_id": ids, **{k: pa.array(v, pa.float64()) for k, v in weights.items()}}),
                    output / MIXTURES)
        plan = {
            "domains": [asdict(d) for d in spec.domains],
            "validation": [asdict(v) for v in spec.validation],
            "tokens": tokens,
            "heldout_fraction": spec.heldout_fraction,
            "prior": rounded_weights(names, prior),
            "constraints": {"min_weight": spec.min_weight, "max_weight": spec.max_weight,
                            "max_epochs": spec.max_epochs, "tokens_per_run": config.tokens_per_run},
            "config": {**as_plain(config), "runs": len(ids)},
        }
        if reuse:
            plan["reused"] = {"from": str(Path(config.reuse).resolve()), "runs": len(reuse.rows),
                              "fresh_runs": int(len(mixtures)), "skipped": reuse.skipped,
                              "changed_domains": reuse.changed, "notes": reuse.notes}
        write_atomic(output / PLAN, plan)
        run.finish(rows_out=len(ids), domains=names, tokens=tokens, **({"reused": plan["reused"]} if reuse else {}))
    return plan


def load_plan(plan_dir: str | Path) -> dict:
    """plan.json of a finished plan directory; raises `InputError` if it is missing or unfinished."""
    plan_dir = Path(plan_dir)
    read_manifest(plan_dir)
    plan = read_json(plan_dir / PLAN)
    if plan is None:
        raise InputError(f"{plan_dir}: not a mixture plan (no {PLAN}); create one with `wb mix plan`")
    return plan


def plan_in(directory: str | Path | None) -> dict | None:
    """plan.json of `directory` if it holds one (a results table's folder, or a fit's plan_dir), else None."""
    return read_json(Path(directory) / PLAN) if directory else None


def domain_names(plan: dict) -> list[str]:
    return [d["name"] for d in plan["domains"]]


def plan_constraints(plan: dict, tokens_per_run: int | None = None) -> Constraints:
    c = plan["constraints"]
    names = domain_names(plan)
    return Constraints(names, c["min_weight"], c["max_weight"], c["max_epochs"],
                       {n: plan["tokens"][n]["train"] for n in names}, tokens_per_run or c["tokens_per_run"])


def load_arrays(plan_dir: str | Path, plan: dict) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(training arrays per domain, evaluation arrays per domain and extra validation set), memory-mapped."""
    tokens = Path(plan_dir) / "tokens"
    names = domain_names(plan)
    train = {n: np.memmap(tokens / f"{n}.train.u8", dtype=np.uint8, mode="r") for n in names}
    evals = {n: np.memmap(tokens / f"{n}.valid.u8", dtype=np.uint8, mode="r")
             for n in names if plan["tokens"][n]["valid"] > 0}
    for extra in plan["validation"]:
        evals[extra["name"]] = np.memmap(tokens / f"val.{extra['name']}.u8", dtype=np.uint8, mode="r")
    return train, evals
