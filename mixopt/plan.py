"""`wb mix plan`: read the domains, split held-out text, store byte tokens, and sample proxy mixtures.

The plan directory holds everything later steps need: `plan.json` (domains, token counts, the natural
prior, constraints), `tokens/*.u8` (byte arrays for training and evaluation) and `mixtures.parquet`.

    wb mix plan examples/mixopt/domains.yaml --output runs/mix --runs 48
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from mixopt.domains import is_heldout, load_domains_file, read_texts, to_bytes
from mixopt.proxy import MODEL_SIZES, TOKEN_BUDGETS
from mixopt.results import weight_column, write_results
from mixopt.sampler import Constraints, natural_prior, rounded_weights, sample_mixtures
from workbench.config import RunOptions, as_plain, option
from workbench.errors import InputError
from workbench.io import write_table
from workbench.rundir import RunDir, read_manifest
from workbench.runfiles import (
    FIT_CURVE,
    MIXTURES,
    PLAN,
    RESULTS,
    SWEEP,
    SWEEP_SHARDS,
    read_json,
    write_atomic,
)


@dataclass
class PlanConfig(RunOptions):
    """How mixtures are sampled for the proxy sweep."""

    runs: int = option(0, "number of proxy mixtures to sample; 0 = max(48, 10 x domains) (Olmix: the runs "
                          "needed grow with the number of domains)", min=0)
    seed: int = option(42, "sampling seed (RegMix used 42)")
    temperature: float = option(0.5, "prior temperature: natural token distribution ** temperature")
    model_size: str = option("tiny", "proxy preset the sweep will train (`wb mix run` takes it from the plan)",
                             choices=sorted(MODEL_SIZES))
    tokens_per_run: int = option(0, "proxy training tokens, used for the epoch cap; 0 = the --model-size preset's "
                                    "budget (tiny 400k ... olmix-60m 6B)", min=0)
    reuse: str = option("", "results.parquet of an earlier sweep: keep its finished proxies whose domains "
                            "still apply and sample only the rest")
    reuse_mixture: str = option("", "mixture.json of a search over an earlier domain set: the domains unchanged "
                                    "since keep its ratios as one virtual domain ('reused'), so only it and the new "
                                    "or changed domains are searched, with the runs of that smaller set (Olmix "
                                    "mixture reuse)")


def default_runs(domains: int) -> int:
    """Proxy runs for `domains` domains: 10 per domain, at least 48 (LightGBM cannot split on fewer)."""
    return max(48, 10 * domains)


def make_plan(domains_yaml: str | Path, output: str | Path, config: PlanConfig) -> dict:
    """Write a plan directory; return plan.json's content. Raises `InputError` on bad domains.

    With `config.reuse`, the earlier sweep's applicable runs join `mixtures.parquet` and `results.parquet`
    (so `wb mix run` skips them) and only max(runs - reused, 10 x new or changed domains) are sampled.
    """
    from mixopt.reuse import VIRTUAL, load_reuse, load_virtual

    if config.reuse and config.reuse_mixture:
        raise InputError("--reuse and --reuse-mixture: choose one (whole earlier runs, or the earlier mixture)")
    if not config.tokens_per_run:
        config = replace(config, tokens_per_run=TOKEN_BUDGETS[config.model_size])
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
        virtual = load_virtual(config.reuse_mixture, names, tokens) if config.reuse_mixture else None
        searched = searched_names(names, virtual.members if virtual else None)
        available = {n: tokens[n]["train"] for n in names}
        prior = natural_prior(available, names)
        if virtual:  # the virtual domain: its members' prior, and the tokens its ratios let it use up
            prior = np.array([prior[names.index(n)] for n in searched[1:]])
            prior = np.concatenate([[1 - prior.sum()], prior])
            available[VIRTUAL] = virtual_tokens(available, virtual.members)
        constraints = Constraints(searched, {k: v for k, v in spec.min_weight.items() if k in searched},
                                  {k: v for k, v in spec.max_weight.items() if k in searched}, spec.max_epochs,
                                  {n: available[n] for n in searched}, config.tokens_per_run)
        runs = config.runs or default_runs(len(searched))
        reuse = (load_reuse(config.reuse, names, tokens, [asdict(v) for v in spec.validation], constraints,
                            config.tokens_per_run) if config.reuse else None)
        for stale in (RESULTS, SWEEP, FIT_CURVE):  # proxies of an earlier plan do not belong to this one
            (output / stale).unlink(missing_ok=True)
        shutil.rmtree(output / SWEEP_SHARDS, ignore_errors=True)
        fresh = runs
        if reuse:  # new and changed domains still need runs of their own
            covered = [n for n in names if n not in reuse.changed and any(r[weight_column(n)] > 0 for r in reuse.rows)]
            fresh = min(runs, max(runs - len(reuse.rows), 10 * (len(names) - len(covered))))
        mixtures = sample_mixtures(prior, fresh, constraints, np.random.default_rng(config.seed),
                                   temperature=config.temperature) if fresh else np.zeros((0, len(names)))
        ids = [f"run-{i:04d}" for i in range(len(mixtures))]
        weights = {weight_column(n): mixtures[:, j].tolist() for j, n in enumerate(searched)}
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
            "prior": rounded_weights(searched, prior),
            "constraints": {"min_weight": spec.min_weight, "max_weight": spec.max_weight,
                            "max_epochs": spec.max_epochs, "tokens_per_run": config.tokens_per_run},
            "model_size": config.model_size,
            "config": {**as_plain(config), "runs": len(ids)},
        }
        if reuse:
            plan["reused"] = {"from": str(Path(config.reuse).resolve()), "runs": len(reuse.rows),
                              "fresh_runs": int(len(mixtures)), "skipped": reuse.skipped,
                              "changed_domains": reuse.changed, "notes": reuse.notes}
        if virtual:
            full = default_runs(len(names))
            plan["virtual"] = {**virtual.as_plan(), "available_tokens": int(available[VIRTUAL]),
                               "saved": {"runs": len(ids), "full_runs": full, "fraction": round(1 - len(ids) / full, 4)}}
        write_atomic(output / PLAN, plan)
        run.finish(rows_out=len(ids), domains=names, tokens=tokens, **({"reused": plan["reused"]} if reuse else {}),
                   **({"virtual": plan["virtual"]} if virtual else {}))
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


def searched_names(names: list[str], members: dict[str, float] | None) -> list[str]:
    """The domains a plan samples and searches: the real ones, or the virtual domain and those outside it."""
    from mixopt.reuse import VIRTUAL

    return [VIRTUAL, *(n for n in names if n not in members)] if members else list(names)


def domain_names(plan: dict) -> list[str]:
    """The domains the plan's mixtures, results and fit are over (with `--reuse-mixture`, the virtual one)."""
    return searched_names(real_domain_names(plan), (plan.get("virtual") or {}).get("members"))


def real_domain_names(plan: dict) -> list[str]:
    """The domains with data: what proxies train on and the corpus is built from."""
    return [d["name"] for d in plan["domains"]]


def virtual_tokens(available: dict[str, int], members: dict[str, float]) -> int:
    """Tokens a virtual domain can give before one member runs out: min over members of tokens / share."""
    return int(min(available[n] / share for n, share in members.items() if share > 0))


def expand_weights(plan: dict, weights: dict[str, float]) -> dict[str, float]:
    """Weights over the plan's searched domains as weights over its real domains (the virtual weight split
    by its members' shares); unchanged for a plan without a virtual domain."""
    virtual = plan.get("virtual")
    if not virtual:
        return dict(weights)
    share = weights.get(virtual["name"], 0.0)
    return {n: weights[n] if n not in virtual["members"] else share * virtual["members"][n]
            for n in real_domain_names(plan)}


def plan_constraints(plan: dict, tokens_per_run: int | None = None) -> Constraints:
    c = plan["constraints"]
    names = domain_names(plan)
    available = {n: plan["tokens"][n]["train"] for n in real_domain_names(plan)}
    if plan.get("virtual"):
        available[plan["virtual"]["name"]] = virtual_tokens(available, plan["virtual"]["members"])
    return Constraints(names, {k: v for k, v in c["min_weight"].items() if k in names},
                       {k: v for k, v in c["max_weight"].items() if k in names}, c["max_epochs"],
                       {n: available[n] for n in names}, tokens_per_run or c["tokens_per_run"])


def load_arrays(plan_dir: str | Path, plan: dict) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(training arrays per domain, evaluation arrays per domain and extra validation set), memory-mapped."""
    tokens = Path(plan_dir) / "tokens"
    names = real_domain_names(plan)
    train = {n: np.memmap(tokens / f"{n}.train.u8", dtype=np.uint8, mode="r") for n in names}
    evals = {n: np.memmap(tokens / f"{n}.valid.u8", dtype=np.uint8, mode="r")
             for n in names if plan["tokens"][n]["valid"] > 0}
    for extra in plan["validation"]:
        evals[extra["name"]] = np.memmap(tokens / f"val.{extra['name']}.u8", dtype=np.uint8, mode="r")
    return train, evals
