"""`wb mix search`: simulate many mixtures, predict each with the fitted regressor, average the top k.

Candidates come from the same constrained sampler as the plan (natural prior, per-domain bounds, epoch
caps at the final corpus size), so the answer honours what the sweep honoured. On a bring-your-own table
(no plan) the sampler is centred on the mean of the table's own mixtures, the estimate of how they were
sampled, as RegMix samples its candidates the way it sampled its training mixtures: tree regressors
predict flat outside the region they have seen. The natural reference is `--natural`, else the plan's
prior, else that estimate. The chosen mixture's total-variation distance to the nearest training
mixtures is reported beside the training mixtures' own spacing. With several targets the
non-dominated candidates (the Pareto front of the per-metric predictions) are listed as well.

    wb mix search runs/mix-fit --samples 1000000 --top-k 100 --output runs/mix-search
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from mixopt.fit import load_fit
from mixopt.loglinear import predict_loglinear
from mixopt.plan import expand_weights, plan_constraints, plan_in, real_domain_names
from mixopt.sampler import Constraints, rounded_weights, sample_candidates
from workbench.config import RunOptions, option
from workbench.errors import InputError
from workbench.io import write_table
from workbench.rundir import RunDir
from workbench.runfiles import MIXTURE, PARETO, PRODUCT, write_atomic

PARETO_POOL = 100_000  # candidates checked for the Pareto front


@dataclass
class SearchConfig(RunOptions):
    """How many mixtures to simulate and which constraints they must meet."""

    samples: int = option(1_000_000, "candidate mixtures to simulate", min=1)
    top_k: int = option(100, "average the k best predicted mixtures (RegMix: 128)", min=1)
    seed: int = option(0, "sampling seed")
    min_weight: list[str] = option([], "DOMAIN=W lower bounds (added to the plan's)")
    max_weight: list[str] = option([], "DOMAIN=W upper bounds (added to the plan's)")
    max_epochs: float = option(0.0, "epoch cap per domain at --tokens (0 = the plan's)")
    tokens: int = option(0, "size of the final corpus in tokens, for the epoch cap (0 = no epoch cap)")
    natural: list[str] = option([], "DOMAIN=W natural (reference) mixture; default: the plan's prior, else "
                                "the mean of the fit's training mixtures")
    regressor: str = option("lightgbm", "which fitted regressor ranks the candidates (`wb mix fit` scores each)",
                            choices=["lightgbm", "linear", "loglinear"])


def parse_bounds(specs: list[str], domains: list[str], flag: str) -> dict[str, float]:
    bounds = {}
    for spec in specs:
        name, _, value = spec.partition("=")
        if name not in domains or not value:
            raise InputError(f"--{flag} {spec!r}: expected DOMAIN=WEIGHT with DOMAIN one of {domains}")
        bounds[name] = float(value)
    return bounds


def training_mixtures(fit_dir: str | Path, fit: dict) -> tuple[np.ndarray, list[str]] | None:
    """(weights, run ids) of the mixtures a fit was trained on, or None for a fit written before they were kept."""
    import pyarrow.parquet as pq

    path = Path(fit_dir) / PRODUCT
    if not path.exists():
        return None
    table = pq.read_table(path)
    if not all(c in table.column_names for c in fit["weight_columns"]):
        return None
    return (np.column_stack([table[c].to_numpy() for c in fit["weight_columns"]]),
            [str(r) for r in table["run_id"].to_pylist()])


def parse_natural(specs: list[str], domains: list[str]) -> np.ndarray:
    """--natural DOMAIN=W...: a full mixture (unnamed domains get 0), summing to 1 within 0.01."""
    weights = parse_bounds(specs, domains, "natural")
    natural = np.array([weights.get(d, 0.0) for d in domains])
    if (natural < 0).any() or abs(natural.sum() - 1) > 0.01:
        raise InputError(f"--natural: the weights must be >= 0 and sum to 1; they sum to {natural.sum():.4f}")
    return natural / natural.sum()


def search_constraints(fit: dict, config: SearchConfig,
                       trained: np.ndarray | None = None) -> tuple[np.ndarray, Constraints, np.ndarray, str]:
    """(candidate prior, constraints, natural reference, where the reference came from) for search.

    The prior and constraints are the plan's (as the sweep had them), tightened by the flags; without a
    plan the prior is the mean of the training mixtures `trained` (uniform if unknown).
    """
    domains = fit["domains"]
    plan = plan_in(fit.get("plan_dir"))
    if plan:
        prior = np.array([plan["prior"][d] for d in domains])
        constraints = plan_constraints(plan, config.tokens or None)
        constraints.domains = domains  # the fit's column order
        constraints.max_epochs = config.max_epochs or constraints.max_epochs
        source = "the plan's natural token distribution"
    else:
        if trained is not None:
            prior = np.maximum(trained.mean(axis=0), 1e-6)
            prior /= prior.sum()
            source = f"estimated: the mean of the {len(trained)} training mixtures"
        else:
            prior = np.full(len(domains), 1 / len(domains))
            source = "uniform (this fit does not keep its training mixtures)"
        constraints = Constraints(domains, max_epochs=config.max_epochs or None)
    constraints.min_weight = {**constraints.min_weight, **parse_bounds(config.min_weight, domains, "min-weight")}
    constraints.max_weight = {**constraints.max_weight, **parse_bounds(config.max_weight, domains, "max-weight")}
    if not config.tokens:
        constraints.max_epochs = None  # no corpus size given: no epoch cap to apply
    elif not constraints.available_tokens and constraints.max_epochs:
        raise InputError("--tokens with an epoch cap needs the plan's token counts; fit a plan's results.parquet")
    natural = prior
    if config.natural:
        natural, source = parse_natural(config.natural, domains), "--natural"
    return prior, constraints, natural, source


def regressor(fit: dict, booster, name: str):
    """A function from weight rows to the predicted objective, by the fitted regressor `name`."""
    if name == "lightgbm":
        return booster.predict
    if name == "linear":
        return lambda X: X @ np.asarray(fit["linear_coef"])
    if not fit.get("loglinear"):
        raise InputError("--regressor loglinear: this fit has no log-linear law; re-run `wb mix fit`")
    return lambda X: predict_loglinear(fit["loglinear"], X)


def distance_to_training(chosen: np.ndarray, trained: np.ndarray, run_ids: list[str], k: int = 5) -> dict:
    """Total-variation distance of `chosen` to its nearest training mixtures, and how far apart those sit.

    `typical_nearest` is the median distance from a training mixture to its nearest other one (on at most
    2,000 of them): a chosen mixture much farther out than that lies where the regressor saw no runs.
    """
    tv = 0.5 * np.abs(trained - chosen).sum(axis=1)
    order = np.argsort(tv)
    sample = trained[np.random.default_rng(0).permutation(len(trained))[:2000]]
    spacing = np.full(len(sample), np.inf)
    for i in range(len(sample)):
        d = 0.5 * np.abs(sample - sample[i]).sum(axis=1)
        d[i] = np.inf
        spacing[i] = d.min()
    return {"nearest_run": run_ids[order[0]], "nearest": round(float(tv[order[0]]), 4),
            f"mean_{k}_nearest": round(float(tv[order[:k]].mean()), 4),
            "typical_nearest": round(float(np.median(spacing[np.isfinite(spacing)])), 4) if len(sample) > 1 else None}


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


WEIGHT_KEYS = ("weights", "best_single", "natural", "candidate_prior", "uniform")


def to_real_domains(mixture: dict, plan: dict | None) -> None:
    """With a virtual domain (`wb mix plan --reuse-mixture`), rewrite the mixture's weights over the real
    domains (so `wb mix build` and `confirm` read them as ever), keeping the searched ones under `searched`."""
    if not plan or not plan.get("virtual"):
        return
    real = real_domain_names(plan)
    mixture["searched"] = {k: mixture[k] for k in WEIGHT_KEYS}
    for key in WEIGHT_KEYS:
        expanded = expand_weights(plan, mixture[key])
        mixture[key] = rounded_weights(real, np.array([expanded[n] for n in real]))
    mixture["virtual"] = {k: plan["virtual"][k] for k in ("name", "members", "from", "saved")}


def run_search(fit_dir: str | Path, output: str | Path, config: SearchConfig, log=print) -> dict:
    """Search, write `mixture.json`, `mixture.png`, the top-k table and the Pareto front; return the mixture."""
    import lightgbm

    fit, booster = load_fit(fit_dir)
    domains = fit["domains"]
    predict = regressor(fit, booster, config.regressor)
    kept = training_mixtures(fit_dir, fit)
    prior, constraints, natural, natural_source = search_constraints(fit, config, kept[0] if kept else None)
    if config.top_k < 1 or config.samples < config.top_k:
        raise InputError(f"--top-k must be between 1 and --samples ({config.samples}); got {config.top_k}")
    rng = np.random.default_rng(config.seed)
    candidates = sample_candidates(prior, config.samples, constraints, rng)
    predicted = predict(candidates)
    top = np.argsort(predicted)[: config.top_k]
    chosen = candidates[top].mean(axis=0)
    output = Path(output)
    with RunDir(output, "mix-search", config, inputs=[{"path": str(fit_dir)}]) as run:
        mixture = {
            "weights": rounded_weights(domains, chosen),
            "predicted_objective": float(predict(chosen[None, :])[0]), "regressor": config.regressor,
            "best_single": rounded_weights(domains, candidates[top[0]]),
            "natural": rounded_weights(domains, natural),
            "natural_source": natural_source,
            "predicted_natural": float(predict(natural[None, :])[0]),
            "candidate_prior": rounded_weights(domains, prior),
            "uniform": rounded_weights(domains, np.ones(len(domains))),
            "predicted_uniform": float(predict(np.full((1, len(domains)), 1 / len(domains)))[0]),
            "targets": fit["targets"], "samples": int(len(candidates)), "top_k": config.top_k,
            "plan_dir": fit.get("plan_dir"), "fit_dir": str(Path(fit_dir).resolve()),
        }
        if kept:
            mixture["distance_to_training"] = distance_to_training(chosen, *kept)
        to_real_domains(mixture, plan_in(fit.get("plan_dir")))
        write_atomic(output / MIXTURE, mixture)
        plot_mixture(domains, chosen, natural, output / "mixture.png")
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
                        output / PARETO)
            mixture["pareto_size"] = int(len(front))
        run.finish(rows_in=len(candidates), rows_out=config.top_k, mixture=mixture["weights"])
    log(f"{'domain':<16} {'natural':>8} {'chosen':>8}   (natural: {natural_source})")
    for j, d in enumerate(domains):
        log(f"{d:<16} {natural[j]:>8.3f} {chosen[j]:>8.3f}")
    log(f"predicted objective: chosen {mixture['predicted_objective']:.3f}, natural "
        f"{mixture['predicted_natural']:.3f}, uniform {mixture['predicted_uniform']:.3f} (lower is better)")
    if kept:
        log(distance_line(mixture["distance_to_training"]))
    return mixture


def distance_line(d: dict) -> str:
    """One line on how far the chosen mixture is from the training mixtures, with a warning when far out."""
    line = (f"distance to the nearest training mixture ({d['nearest_run']}): {d['nearest']:.3f} total variation, "
            f"{d['mean_5_nearest']:.3f} to the 5 nearest")
    if d["typical_nearest"] is None:
        return line
    line += f"; training mixtures sit {d['typical_nearest']:.3f} from their nearest neighbour"
    if d["nearest"] > 2 * d["typical_nearest"]:
        line += ("\nwarning: the chosen mixture lies outside the region the training runs cover, where tree "
                 "regressors predict flat; check it with `wb mix confirm` or add runs near it")
    return line
