"""Olmix's lessons: proxy presets up to 60M parameters with their token budgets, and mixture reuse through a
virtual domain, checked on a synthetic ground truth whose optimum is known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mixopt.api import sweep_config
from mixopt.build import BuildConfig, run_build
from mixopt.fit import FitConfig, run_fit
from mixopt.plan import PlanConfig, domain_names, expand_weights, make_plan
from mixopt.proxy import TOKEN_BUDGETS, ProxyConfig, non_embedding_parameters
from mixopt.proxy_runs import run_settings
from mixopt.search import SearchConfig, run_search
from workbench.errors import InputError
from workbench.io import write_table

NAMES = [f"d{i}" for i in range(8)]  # d0..d5 unchanged, d6 changes its data, d7 is new
OPTIMUM = np.array([0.2, 0.1, 0.15, 0.05, 0.1, 0.1, 0.15, 0.15])


def quiet(*_args, **_kwargs):
    pass


def domains_yaml(folder: Path, names: list[str], changed: tuple[str, ...] = ()) -> Path:
    folder.mkdir(exist_ok=True)
    for i, name in enumerate(names):
        text = ("changed data " if name in changed else "") + f"word{i} " * (20 + i)
        (folder / f"{name}.jsonl").write_text("".join(json.dumps({"text": f"{k} {text}"}) + "\n" for k in range(20)))
    path = folder / "domains.yaml"
    path.write_text("domains:\n" + "".join(f"  {n}: {n}.jsonl\n" for n in names) + "heldout_fraction: 0.1\n")
    return path


def synthetic_sweep(plan_dir: Path, optimum: np.ndarray) -> int:
    """Write the plan's results.parquet as if its proxies had run, with a loss that is a bowl around
    `optimum` (over the real domains); return the number of runs."""
    from mixopt.plan import load_plan

    plan = load_plan(plan_dir)
    mixtures = pq.read_table(plan_dir / "mixtures.parquet").to_pylist()
    real = [d["name"] for d in plan["domains"]]
    loss = []
    for m in mixtures:
        weights = expand_weights(plan, {n: m[f"w.{n}"] for n in domain_names(plan)})
        loss.append(float(((np.array([weights[n] for n in real]) - optimum) ** 2).sum()))
    columns = {k: [m[k] for m in mixtures] for k in mixtures[0]}
    write_table(pa.table({**columns, "status": ["ok"] * len(mixtures), "loss": loss}), plan_dir / "results.parquet")
    return len(mixtures)


def chosen(plan_dir: Path, out: Path) -> np.ndarray:
    """Fit the loss and search: the chosen mixture over the real domains, in NAMES order."""
    run_fit(plan_dir / "results.parquet", out / "fit", FitConfig(target=["loss"], num_iterations=200,
                                                                  learning_rate=0.05, folds=2), log=quiet)
    mixture = run_search(out / "fit", out / "search", SearchConfig(samples=10_000, top_k=50), log=quiet)
    return np.array([mixture["weights"].get(n, 0.0) for n in NAMES])


def reuse_round(tmp: Path, seed: int, capsys=None) -> tuple[float, float]:
    """L1 to the optimum of a full recomputation and of a reuse plan, both planned with `seed`; the reuse
    plan goes through the CLI when `capsys` is given (and its output is checked)."""
    tmp.mkdir()
    make_plan(domains_yaml(tmp / "old", NAMES[:7]), tmp / "old-plan", PlanConfig(tokens_per_run=1_000, seed=seed))
    assert synthetic_sweep(tmp / "old-plan", OPTIMUM[:7] / OPTIMUM[:7].sum()) == 70
    chosen(tmp / "old-plan", tmp / "old")
    new_yaml = domains_yaml(tmp / "new", NAMES, changed=("d6",))
    make_plan(new_yaml, tmp / "full-plan", PlanConfig(tokens_per_run=1_000, seed=seed))
    assert synthetic_sweep(tmp / "full-plan", OPTIMUM) == 80
    full_l1 = np.abs(chosen(tmp / "full-plan", tmp / "full") - OPTIMUM).sum()
    reuse = PlanConfig(tokens_per_run=1_000, seed=seed, reuse_mixture=str(tmp / "old" / "search" / "mixture.json"))
    if capsys is None:
        make_plan(new_yaml, tmp / "reuse-plan", reuse)
    else:
        from workbench.cli import main

        assert main(["mix", "plan", str(new_yaml), "--output", str(tmp / "reuse-plan"), "--tokens-per-run", "1000",
                     "--seed", str(seed), "--reuse-mixture", reuse.reuse_mixture]) == 0
        out = capsys.readouterr().out
        assert "searching 3 domains: 48 runs instead of 80 for all 8 (40% less proxy compute)" in out
        assert "built on 70 earlier proxies" in out
    assert synthetic_sweep(tmp / "reuse-plan", OPTIMUM) == 48
    return full_l1, np.abs(chosen(tmp / "reuse-plan", tmp / "reuse") - OPTIMUM).sum()


def test_reused_mixture_finds_the_known_optimum_as_well_as_a_full_recomputation(tmp_path, capsys):
    # the optimum's ratios among d0..d5 are the old optimum's: what mixture reuse assumes of unchanged domains
    rounds = [reuse_round(tmp_path / f"seed{seed}", seed, capsys if seed == 0 else None) for seed in range(3)]
    full_l1, reuse_l1 = np.mean(rounds, axis=0)
    print(f"mean L1 to the optimum over 3 plan seeds: full recomputation {full_l1:.3f} (80 proxies), "
          f"reuse {reuse_l1:.3f} (48 proxies); per seed {np.round(rounds, 3).tolist()}")
    assert full_l1 < 0.4 and reuse_l1 <= full_l1 + 0.05  # the same L1 for 40% fewer proxies

    plan = json.loads((tmp_path / "seed0" / "reuse-plan" / "plan.json").read_text())
    virtual = plan["virtual"]
    assert sorted(virtual["members"]) == NAMES[:6] and virtual["changed"] == ["d6"] and virtual["added"] == ["d7"]
    assert virtual["saved"] == {"runs": 48, "full_runs": 80, "fraction": 0.4} and virtual["earlier_runs"] == 70
    assert domain_names(plan) == ["reused", "d6", "d7"]
    assert pq.read_table(tmp_path / "seed0" / "reuse-plan" / "mixtures.parquet").column_names == [
        "run_id", "w.reused", "w.d6", "w.d7"]
    # proxies of the reuse plan train on the real domains, the virtual weight split by the old ratios
    mixture = pq.read_table(tmp_path / "seed0" / "reuse-plan" / "mixtures.parquet").to_pylist()[0]
    weights, _ = run_settings(mixture, plan, ProxyConfig())
    assert sorted(weights) == NAMES and sum(weights.values()) == pytest.approx(1)
    assert weights["d0"] / weights["d1"] == pytest.approx(virtual["members"]["d0"] / virtual["members"]["d1"])
    # and the chosen mixture builds like any other: its weights are over the real domains
    search = tmp_path / "seed0" / "reuse" / "search" / "mixture.json"
    assert set(json.loads(search.read_text())["searched"]["weights"]) == {"reused", "d6", "d7"}
    counts = run_build(search, tmp_path / "corpus", BuildConfig(tokens=5_000), log=quiet)
    assert set(counts) == set(NAMES)


def test_reuse_mixture_refuses_what_it_cannot_reuse(tmp_path):
    old = make_plan(domains_yaml(tmp_path / "old", NAMES[:3]), tmp_path / "old-plan", PlanConfig(runs=4, tokens_per_run=1_000))
    (tmp_path / "m.json").write_text(json.dumps({"weights": {"d0": 0.5, "d1": 0.3, "d2": 0.2},
                                                 "plan_dir": str(tmp_path / "old-plan")}))
    assert old["config"]["runs"] == 4
    changed = domains_yaml(tmp_path / "new", NAMES[:3], changed=("d1", "d2"))
    with pytest.raises(InputError, match=r"1 domain\(s\) with weight are unchanged since that search \(d0\); reuse "
                                         "needs at least 2"):
        make_plan(changed, tmp_path / "p", PlanConfig(runs=4, tokens_per_run=1_000, reuse_mixture=str(tmp_path / "m.json")))
    with pytest.raises(InputError, match="--reuse and --reuse-mixture: choose one"):
        make_plan(changed, tmp_path / "p", PlanConfig(runs=4, reuse="x", reuse_mixture="y"))
    (tmp_path / "bad.json").write_text(json.dumps({"weights": {"d0": 1.0}}))
    with pytest.raises(InputError, match="has no plan.json, so unchanged domains cannot be told"):
        make_plan(changed, tmp_path / "p", PlanConfig(runs=4, tokens_per_run=1_000, reuse_mixture=str(tmp_path / "bad.json")))


def test_presets_reach_olmix_scale_with_their_token_budgets(tmp_path):
    assert 15e6 <= non_embedding_parameters("olmix-15m") < 17e6
    assert 55e6 <= non_embedding_parameters("olmix-60m") < 65e6
    yaml = domains_yaml(tmp_path / "d", NAMES[:2])
    yaml.write_text(yaml.read_text() + "max_epochs: 0\n")  # no epoch cap: tiny data, a 1.5B-token budget
    plan = make_plan(yaml, tmp_path / "plan", PlanConfig(runs=4, model_size="olmix-15m"))
    assert plan["model_size"] == "olmix-15m" and plan["constraints"]["tokens_per_run"] == TOKEN_BUDGETS["olmix-15m"]
    config = sweep_config(tmp_path / "plan")  # `wb mix run` trains what the plan was made for
    assert (config.model_size, config.tokens_per_run, config.steps) == ("olmix-15m", 1_500_000_000, 732_421)
    config = sweep_config(tmp_path / "plan", model_size="tiny", tokens_per_run=4_096)  # unless told otherwise
    assert (config.model_size, config.tokens_per_run) == ("tiny", 4_096)
    assert TOKEN_BUDGETS["olmix-60m"] == 100 * 60_000_000  # Olmix's 100 tokens per parameter
