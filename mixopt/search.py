"""`wb mix search`: simulate many mixtures, predict each with the fitted regressor, average the top k.

Candidates come from the same constrained sampler as the plan (natural prior, per-domain bounds, epoch
caps at the final corpus size), so the answer honours what the sweep honoured. With several targets the
non-dominated candidates (the Pareto front of the per-metric predictions) are listed as well.

    wb mix search runs/mix-fit --samples 1000000 --top-k 100 --output runs/mix-search
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from mixopt.fit import load_fit
from mixopt.plan import plan_constraints, plan_in
from mixopt.sampler import Constraints, sample_candidates
from workbench.config import option
from workbench.errors import InputError
from workbench.io import write_table
from workbench.rundir import RunDir, write_json_atomic

PARETO_POOL = 100_000  # candidates checked for the Pareto front


@dataclass
class SearchConfig:
    """How many mixtures to simulate and which constraints they must meet."""

    samples: int = option(1_000_000, "candidate mixtures to simulate", min=1)
    top_k: int = option(100, "average the k best predicted mixtures (RegMix: 128)", min=1)
    seed: int = option(0, "sampling seed")
    min_weight: list[str] = option([], "DOMAIN=W lower bounds (added to the plan's)")
    max_weight: list[str] = option([], "DOMAIN=W upper bounds (added to the plan's)")
    max_epochs: float = option(0.0, "epoch cap per domain at --tokens (0 = the plan's)")
    tokens: int = option(0, "size of the final corpus in tokens, for the epoch cap (0 = no epoch cap)")


def parse_bounds(specs: list[str], domains: list[str], flag: str) -> dict[str, float]:
    bounds = {}
    for spec in specs:
        name, _, value = spec.partition("=")
        if name not in domains or not value:
            raise InputError(f"--{flag} {spec!r}: expected DOMAIN=WEIGHT with DOMAIN one of {domains}")
        bounds[name] = float(value)
    return bounds


def search_constraints(fit: dict, config: SearchConfig) -> tuple[np.ndarray, Constraints]:
    """The prior and constraints for search: the plan's (as the sweep had them), tightened by the flags."""
    domains = fit["domains"]
    plan = plan_in(fit.get("plan_dir"))
    if plan:
        prior = np.array([plan["prior"][d] for d in domains])
        constraints = plan_constraints(plan, config.tokens or None)
        constraints.domains = domains  # the fit's column order
        constraints.max_epochs = config.max_epochs or constraints.max_epochs
    else:
        prior = np.full(len(domains), 1 / len(domains))
        constraints = Constraints(domains, max_epochs=config.max_epochs or None)
    constraints.min_weight = {**constraints.min_weight, **parse_bounds(config.min_weight, domains, "min-weight")}
    constraints.max_weight = {**constraints.max_weight, **parse_bounds(config.max_weight, domains, "max-weight")}
    if not config.tokens:
        constraints.max_epochs = None  # no corpus size given: no epoch cap to apply
    elif not constraints.available_tokens and constraints.max_epochs:
        raise InputError("--tokens with an epoch cap needs the plan's token counts; fit a plan's results.parquet")
    return prior, constraints


def pareto_front(values: np.ndarray) -> np.ndarray:
    """Indices of the rows not dominated by any other (all columns minimised)."""
    order = np.argsort(values[:, 0], kind="stable")
    front: list[int] = []
    for i in order:
        if not front or not np.any(np.all(values[front] <= values[i], axis=1) & np.any(values[front] < values[i], axis=1)):
            front = [j for j in front if not (np.all(values[i] <= values[j]) and np.any(values[i] < values[j]))]
            front.append(int(i))
    return np.array(front, dtype=int)


def plot_mixture(domains: list[str], chosen: np.ndarray, natural: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(domains))
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(domains)), 3.5), dpi=100)
    ax.bar(x - 0.2, natural, width=0.4, label="natural")
    ax.bar(x + 0.2, chosen, width=0.4, label="chosen")
    ax.set_xticks(x, domains, rotation=20)
    ax.set_ylabel("weight")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_search(fit_dir: str | Path, output: str | Path, config: SearchConfig, log=print) -> dict:
    """Search, write `mixture.json`, `mixture.png`, the top-k table and the Pareto front; return the mixture."""
    import lightgbm

    fit, booster = load_fit(fit_dir)
    domains = fit["domains"]
    prior, constraints = search_constraints(fit, config)
    if config.top_k < 1 or config.samples < config.top_k:
        raise InputError(f"--top-k must be between 1 and --samples ({config.samples}); got {config.top_k}")
    rng = np.random.default_rng(config.seed)
    candidates = sample_candidates(prior, config.samples, constraints, rng)
    predicted = booster.predict(candidates)
    top = np.argsort(predicted)[: config.top_k]
    chosen = candidates[top].mean(axis=0)
    output = Path(output)
    with RunDir(output, "mix-search", config, inputs=[{"path": str(fit_dir)}]) as run:
        mixture = {
            "weights": dict(zip(domains, chosen.round(6).tolist(), strict=True)),
            "predicted_objective": float(booster.predict(chosen[None, :])[0]),
            "best_single": dict(zip(domains, candidates[top[0]].round(6).tolist(), strict=True)),
            "natural": dict(zip(domains, prior.round(6).tolist(), strict=True)),
            "predicted_natural": float(booster.predict(prior[None, :])[0]),
            "uniform": dict.fromkeys(domains, round(1 / len(domains), 6)),
            "predicted_uniform": float(booster.predict(np.full((1, len(domains)), 1 / len(domains)))[0]),
            "targets": fit["targets"], "samples": int(len(candidates)), "top_k": config.top_k,
            "plan_dir": fit.get("plan_dir"), "fit_dir": str(Path(fit_dir).resolve()),
        }
        write_json_atomic(output / "mixture.json", mixture)
        plot_mixture(domains, chosen, prior, output / "mixture.png")
        write_table(pa.table({**{f"w.{d}": candidates[top, j] for j, d in enumerate(domains)},
                              "predicted": predicted[top]}), run.product)
        if fit.get("per_metric_models"):
            pool = candidates[: min(PARETO_POOL, len(candidates))]
            preds = np.column_stack([
                lightgbm.Booster(model_file=str(Path(fit_dir) / file)).predict(pool) * np.sign(fit["targets"][name]["weight"] or 1)
                for name, file in fit["per_metric_models"].items()])
            front = pareto_front(preds)
            write_table(pa.table({**{f"w.{d}": pool[front, j] for j, d in enumerate(domains)},
                                  **{name: preds[front, i] for i, name in enumerate(fit["per_metric_models"])}}),
                        output / "pareto.parquet")
            mixture["pareto_size"] = int(len(front))
        run.finish(rows_in=len(candidates), rows_out=config.top_k, mixture=mixture["weights"])
    log(f"{'domain':<16} {'natural':>8} {'chosen':>8}")
    for j, d in enumerate(domains):
        log(f"{d:<16} {prior[j]:>8.3f} {chosen[j]:>8.3f}")
    log(f"predicted objective: chosen {mixture['predicted_objective']:.3f}, natural "
        f"{mixture['predicted_natural']:.3f}, uniform {mixture['predicted_uniform']:.3f} (lower is better)")
    return mixture
