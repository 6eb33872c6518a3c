"""RegMix chain: constrained sampling, fitting a known optimum, search, build proportions, resumable sweep."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mixopt.build import BuildConfig, run_build
from mixopt.fit import FitConfig, load_results, run_fit
from mixopt.plan import PlanConfig, make_plan
from mixopt.proxy import ProxyConfig, train_proxy
from mixopt.sampler import Constraints, natural_prior, rounded_weights, sample_mixtures
from mixopt.search import SearchConfig, pareto_front, run_search
from mixopt.sweep import run_sweep
from workbench.errors import InputError
from workbench.io import write_table

DOMAINS = ["a", "b", "c"]
OPTIMUM = np.array([0.2, 0.5, 0.3])


def quiet(*_args, **_kwargs):
    pass


def FAST_FIT(**kwargs) -> FitConfig:  # noqa: N802 - reads like the config it builds
    """RegMix's regressor with fewer, larger steps so the tests stay quick."""
    return FitConfig(num_iterations=200, learning_rate=0.05, folds=4, **kwargs)


def test_sampler_honours_bounds_and_epoch_caps():
    tokens = {"a": 1_000, "b": 50_000, "c": 50_000}
    constraints = Constraints(DOMAINS, min_weight={"c": 0.1}, max_weight={"b": 0.6}, max_epochs=2,
                              available_tokens=tokens, tokens_per_run=10_000)
    mixtures = sample_mixtures(natural_prior(tokens, DOMAINS), 200, constraints, np.random.default_rng(0))
    assert mixtures.shape == (200, 3)
    np.testing.assert_allclose(mixtures.sum(axis=1), 1.0, atol=1e-9)
    assert (mixtures[:, 0] <= 2 * 1_000 / 10_000 + 1e-9).all()  # epoch cap: 2 passes over 1k tokens
    assert (mixtures[:, 1] <= 0.6 + 1e-9).all() and (mixtures[:, 2] >= 0.1 - 1e-9).all()
    assert len({m.tobytes() for m in mixtures}) == 200
    assert mixtures.std(axis=0).min() > 0.02  # it explores, not one point


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"min_weight": {"a": 0.6, "b": 0.6}}, "minimum weights add up to 1.200"),
    ({"max_weight": {"a": 0.2, "b": 0.2, "c": 0.2}}, "maximum weights .* add up to 0.600"),
    ({"min_weight": {"a": 0.5}, "max_weight": {"a": 0.4}}, "domain 'a': minimum weight 0.5000 exceeds"),
])
def test_infeasible_constraints_are_named(kwargs, message):
    constraints = Constraints(DOMAINS, **kwargs)
    with pytest.raises(InputError, match=message):
        sample_mixtures(np.full(3, 1 / 3), 5, constraints, np.random.default_rng(0))


def synthetic_results(path, n=128, seed=0, noise=0.0):
    """A results table whose metric is a known quadratic bowl with its minimum at OPTIMUM."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(3), size=n)
    metric = ((weights - OPTIMUM) ** 2).sum(axis=1) + noise * rng.standard_normal(n)
    write_table(pa.table({"run_id": [f"run-{i:04d}" for i in range(n)], "status": ["ok"] * n,
                          **{f"w.{d}": weights[:, j] for j, d in enumerate(DOMAINS)}, "loss": metric}), path)
    return path


def test_fit_and_search_recover_a_known_optimum(tmp_path):
    results = synthetic_results(tmp_path / "results.parquet")
    fit = run_fit(results, tmp_path / "fit", FAST_FIT(target=["loss"]), log=quiet)
    assert fit["cv"]["lightgbm"]["spearman"] > 0.9
    assert fit["cv"]["lightgbm"]["spearman"] > fit["cv"]["linear"]["spearman"]  # a bowl is not linear
    assert (tmp_path / "fit" / "predicted_vs_actual.png").stat().st_size > 1000
    mixture = run_search(tmp_path / "fit", tmp_path / "search", SearchConfig(samples=20_000, top_k=50), log=quiet)
    chosen = np.array([mixture["weights"][d] for d in DOMAINS])
    assert np.abs(chosen - OPTIMUM).max() < 0.08
    assert abs(chosen.sum() - 1) < 1e-6
    top = pq.read_table(tmp_path / "search" / "data.parquet")
    assert top.num_rows == 50
    np.testing.assert_allclose([top[f"w.{d}"].to_numpy().mean() for d in DOMAINS], chosen, atol=1e-6)
    assert mixture["predicted_objective"] < mixture["predicted_uniform"]


def test_search_bounds_are_honoured(tmp_path):
    run_fit(synthetic_results(tmp_path / "r.parquet"), tmp_path / "fit", FAST_FIT(target=["loss"]), log=quiet)
    mixture = run_search(tmp_path / "fit", tmp_path / "s", SearchConfig(samples=20_000, top_k=20,
                                                                         max_weight=["b=0.3"]), log=quiet)
    assert mixture["weights"]["b"] <= 0.3 + 1e-9


def test_several_targets_give_a_pareto_front(tmp_path):
    rng = np.random.default_rng(1)
    w = rng.dirichlet(np.ones(3), size=96)
    write_table(pa.table({**{f"w.{d}": w[:, j] for j, d in enumerate(DOMAINS)},
                          "m1": w[:, 0], "m2": w[:, 1]}), tmp_path / "r.parquet")
    fit = run_fit(tmp_path / "r.parquet", tmp_path / "fit", FAST_FIT(target=["m1:0.5", "m2:0.5"]), log=quiet)
    assert set(fit["per_metric_models"]) == {"m1", "m2"}
    run_search(tmp_path / "fit", tmp_path / "s", SearchConfig(samples=5_000, top_k=10), log=quiet)
    front = pq.read_table(tmp_path / "s" / "pareto.parquet")
    assert 1 <= front.num_rows < 5_000


def test_pareto_front_on_known_points():
    points = np.array([[1, 5], [2, 2], [5, 1], [3, 3], [2, 6]], dtype=float)
    assert sorted(pareto_front(points).tolist()) == [0, 1, 2]


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda t: t.drop_columns(["w.b", "w.c"]), "found 1 weight columns"),
    (lambda t: t.set_column(4, "w.c", pa.array([0.9] + t["w.c"].to_pylist()[1:])), "row 1: weights sum to"),
    (lambda t: t.set_column(5, "loss", pa.array([None] + t["loss"].to_pylist()[1:], pa.float64())),
     "row 1: metric 'loss' is NaN or missing"),
])
def test_bad_results_tables(tmp_path, mutate, message):
    table = pq.read_table(synthetic_results(tmp_path / "r.parquet", n=16))
    write_table(mutate(table), tmp_path / "bad.parquet")
    with pytest.raises(InputError, match=message):
        load_results(tmp_path / "bad.parquet", [], ["loss"])


def test_results_of_a_plan_must_have_every_domain(tmp_path):
    table = pq.read_table(synthetic_results(tmp_path / "r.parquet", n=16))
    write_table(table.drop_columns(["w.c"]), tmp_path / "bad.parquet")
    with pytest.raises(InputError, match="no weight column 'w.c' for domain 'c' of the plan"):
        load_results(tmp_path / "bad.parquet", [], ["loss"], expected_domains=DOMAINS)


def test_failed_runs_are_excluded_from_the_fit(tmp_path):
    table = pq.read_table(synthetic_results(tmp_path / "r.parquet", n=16))
    status = ["failed"] + ["ok"] * 15
    loss = [None] + table["loss"].to_pylist()[1:]
    table = table.set_column(1, "status", pa.array(status)).set_column(5, "loss", pa.array(loss, pa.float64()))
    write_table(table, tmp_path / "with-failed.parquet")
    data = load_results(tmp_path / "with-failed.parquet", [], ["loss"])
    assert data.excluded == 1 and len(data.X) == 15


def test_diverging_proxy_is_recorded_as_failed():
    rng = np.random.default_rng(0)
    arrays = {"a": rng.integers(0, 256, 5_000).astype(np.uint8)}
    result = train_proxy(arrays, {"a": 1.0}, arrays, ProxyConfig(lr=1e30, tokens_per_run=2_048,
                                                                  context=32, batch_size=4))
    assert result["status"] == "failed" and result["error"].startswith("loss became")


# --- the real chain on small generated domains -------------------------------------------------------


@pytest.fixture
def domains_yaml(tmp_path):
    rng = np.random.default_rng(0)
    words = {"a": ["alpha", "beta", "gamma"], "b": ["one", "two", "three", "four"], "c": ["x = 1", "y = x + 2"]}
    for name, vocab in words.items():
        rows = [{"text": " ".join(rng.choice(vocab, size=40))} for _ in range(120)]
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "target.jsonl").write_text(json.dumps({"text": "alpha beta one two " * 20}) + "\n")
    path = tmp_path / "domains.yaml"
    path.write_text("domains:\n  a: a.jsonl\n  b: b.jsonl\n  c: {sources: [c.jsonl], field: text}\n"
                    "validation:\n  target: target.jsonl\nheldout_fraction: 0.1\nmax_epochs: 50\n")
    return path


SMALL = ProxyConfig(tokens_per_run=4_096, context=32, batch_size=8, eval_tokens=512)


def test_plan_writes_tokens_and_mixtures(tmp_path, domains_yaml):
    plan = make_plan(domains_yaml, tmp_path / "plan", PlanConfig(runs=6, tokens_per_run=4_096))
    assert set(plan["tokens"]) == {"a", "b", "c"}
    assert all(t["train"] > 0 and t["valid"] > 0 for t in plan["tokens"].values())
    mixtures = pq.read_table(tmp_path / "plan" / "mixtures.parquet")
    assert mixtures.num_rows == 6 and mixtures.column_names == ["run_id", "w.a", "w.b", "w.c"]
    assert (tmp_path / "plan" / "tokens" / "val.target.u8").stat().st_size > 0


def test_domain_without_text_is_an_error(tmp_path, domains_yaml):
    (tmp_path / "c.jsonl").write_text(json.dumps({"text": None}) + "\n")
    with pytest.raises(InputError, match="domain 'c': its sources hold no text"):
        make_plan(domains_yaml, tmp_path / "plan", PlanConfig(runs=4))
    assert not (tmp_path / "plan").exists()


def test_interrupted_sweep_resumes_to_the_same_results(tmp_path, domains_yaml):
    make_plan(domains_yaml, tmp_path / "p1", PlanConfig(runs=4, tokens_per_run=4_096))
    make_plan(domains_yaml, tmp_path / "p2", PlanConfig(runs=4, tokens_per_run=4_096))
    run_sweep(tmp_path / "p1", SMALL, workers=1, limit=2, log=quiet)  # "killed" after two runs
    assert pq.read_table(tmp_path / "p1" / "results.parquet").num_rows == 2
    resumed = run_sweep(tmp_path / "p1", SMALL, workers=1, log=quiet)
    whole = run_sweep(tmp_path / "p2", SMALL, workers=2, log=quiet)
    assert len(resumed) == 4
    by_id = {r["run_id"]: r for r in whole}
    for row in resumed:
        assert row["status"] == "ok"
        assert row["bpb.target"] == pytest.approx(by_id[row["run_id"]]["bpb.target"], abs=1e-6)
    with pytest.raises(InputError, match="trained with context=32, not 64"):
        run_sweep(tmp_path / "p1", ProxyConfig(tokens_per_run=4_096, context=64, batch_size=8, eval_tokens=512),
                  log=quiet)


def test_build_matches_the_mixture_within_one_percent(tmp_path, domains_yaml):
    make_plan(domains_yaml, tmp_path / "plan", PlanConfig(runs=4))
    mixture = {"weights": {"a": 0.5, "b": 0.3, "c": 0.2}, "plan_dir": str(tmp_path / "plan")}
    (tmp_path / "mixture.json").write_text(json.dumps(mixture))
    counts = run_build(tmp_path / "mixture.json", tmp_path / "corpus", BuildConfig(tokens=60_000), log=quiet)
    corpus = pq.read_table(tmp_path / "corpus" / "data.parquet")
    total = sum(len(t.encode()) for t in corpus["text"].to_pylist())
    for name, weight in mixture["weights"].items():
        mask = np.array(corpus["domain"].to_pylist()) == name
        share = sum(len(t.encode()) for t, m in zip(corpus["text"].to_pylist(), mask, strict=True) if m) / total
        assert abs(share - weight) < 0.01
        assert counts[name]["documents"] == mask.sum()
    assert abs(total - 60_000) / 60_000 < 0.01
    assert corpus["domain"].to_pylist()[:10] != sorted(corpus["domain"].to_pylist()[:10])  # shuffled
    manifest = json.loads((tmp_path / "corpus" / "manifest.json").read_text())
    assert manifest["domains"]["a"]["tokens"] == counts["a"]["tokens"]


def test_build_cuts_a_long_document_to_keep_the_share(tmp_path, domains_yaml):
    # domain c becomes four 20 kB documents: its 10% of 60 kB is less than one of them
    (tmp_path / "c.jsonl").write_text("".join(json.dumps({"text": f"line {i} of code\n" * 1200}) + "\n"
                                              for i in range(4)))
    make_plan(domains_yaml, tmp_path / "plan", PlanConfig(runs=4))
    (tmp_path / "m.json").write_text(json.dumps({"weights": {"a": 0.5, "b": 0.4, "c": 0.1},
                                                 "plan_dir": str(tmp_path / "plan")}))
    counts = run_build(tmp_path / "m.json", tmp_path / "corpus", BuildConfig(tokens=60_000), log=quiet)
    assert abs(counts["c"]["share"] - 0.1) < 0.01
    corpus = pq.read_table(tmp_path / "corpus" / "data.parquet").to_pylist()
    cut = [r for r in corpus if r["truncated"]]
    assert len(cut) <= 3 and all(r["text"].endswith("\n") for r in cut if r["domain"] == "c")


def test_build_with_a_zero_weight_domain(tmp_path, domains_yaml):
    make_plan(domains_yaml, tmp_path / "plan", PlanConfig(runs=4))
    (tmp_path / "m.json").write_text(json.dumps({"weights": {"a": 0.0, "b": 0.6, "c": 0.4},
                                                 "plan_dir": str(tmp_path / "plan")}))
    counts = run_build(tmp_path / "m.json", tmp_path / "corpus", BuildConfig(tokens=20_000), log=quiet)
    assert counts["a"]["documents"] == 0
    assert set(pq.read_table(tmp_path / "corpus" / "data.parquet")["domain"].to_pylist()) == {"b", "c"}


def test_build_refuses_more_epochs_than_allowed(tmp_path, domains_yaml):
    make_plan(domains_yaml, tmp_path / "plan", PlanConfig(runs=4))
    (tmp_path / "m.json").write_text(json.dumps({"weights": {"a": 1.0, "b": 0.0, "c": 0.0},
                                                 "plan_dir": str(tmp_path / "plan")}))
    with pytest.raises(InputError, match=r"domain 'a' would need .* epochs"):
        run_build(tmp_path / "m.json", tmp_path / "corpus", BuildConfig(tokens=10_000_000), log=quiet)
    (tmp_path / "bad.json").write_text(json.dumps({"weights": {"a": 0.5, "b": 0.2, "c": 0.2},
                                                   "plan_dir": str(tmp_path / "plan")}))
    with pytest.raises(InputError, match="weights sum to 0.9000, not 1"):
        run_build(tmp_path / "bad.json", tmp_path / "corpus2", BuildConfig(tokens=1000), log=quiet)


def test_cli_chain_plan_run_fit_search_build(tmp_path, domains_yaml, capsys):
    from workbench.cli import main

    plan, fit, search, corpus = (str(tmp_path / n) for n in ("plan", "fit", "search", "corpus"))
    assert main(["mix", "plan", str(domains_yaml), "--output", plan, "--runs", "8", "--tokens-per-run", "4096"]) == 0
    assert main(["mix", "run", plan, "--workers", "2", "--tokens-per-run", "4096", "--context", "32",
                 "--batch-size", "8", "--eval-tokens", "512"]) == 0
    assert "8 proxies in" in capsys.readouterr().out
    assert main(["mix", "fit", f"{plan}/results.parquet", "--output", fit, "--num-iterations", "50",
                 "--folds", "4"]) == 0
    out = capsys.readouterr().out
    assert "lightgbm" in out and "linear" in out and "4-fold CV" in out
    assert main(["mix", "fit", f"{plan}/results.parquet", "--output", str(tmp_path / "f100"), "--folds", "100"]) == 2
    assert "--folds 100: there are only 8 usable proxy runs" in capsys.readouterr().err
    assert json.loads((tmp_path / "fit" / "fit.json").read_text())["targets"] == {
        "bpb.target": json.loads((tmp_path / "fit" / "fit.json").read_text())["targets"]["bpb.target"]}
    assert main(["mix", "search", fit, "--output", search, "--samples", "2000", "--top-k", "20"]) == 0
    mixture = json.loads((tmp_path / "search" / "mixture.json").read_text())
    assert set(mixture["weights"]) == {"a", "b", "c"}
    for key in ("weights", "natural", "uniform", "best_single"):  # as written, to the last digit
        assert sum(Decimal(str(w)) for w in mixture[key].values()) == 1, key
    assert main(["mix", "build", f"{search}/mixture.json", "--output", corpus, "--tokens", "20000"]) == 0
    assert pq.read_table(tmp_path / "corpus" / "data.parquet").num_rows > 0
    assert main(["mix", "fit", f"{plan}/results.parquet", "--output", str(tmp_path / "x"), "--target", "nope"]) == 2
    assert "no column 'nope'" in capsys.readouterr().err


# --- foreign tables: rounded weights, log-linear law, predict, natural reference and distance ----------


def weights_table(path, weights, metric, run_ids=None):
    n = len(weights)
    write_table(pa.table({"run_id": run_ids or [f"run-{i:04d}" for i in range(n)],
                          **{f"w.{d}": weights[:, j] for j, d in enumerate(DOMAINS)}, "loss": metric}), path)
    return path


def test_rounded_weights_are_renormalised_with_one_warning_and_far_sums_refused(tmp_path):
    weights = np.random.default_rng(0).dirichlet(np.ones(3), size=16).round(3)  # RegMix's CSVs: 3 decimals
    weights[1] = [0.2, 0.5, 0.298]  # sums to 0.998
    lines = []
    data = load_results(weights_table(tmp_path / "r.parquet", weights, np.arange(16.0)), [], ["loss"], log=lines.append)
    np.testing.assert_allclose(data.X.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(data.X[1], np.array([0.2, 0.5, 0.298]) / 0.998)
    assert len(lines) == 1 and "renormalised" in lines[0] and "0.9980" in lines[0]
    weights[2] = [0.2, 0.5, 0.25]
    with pytest.raises(InputError, match=r"row 3: weights sum to 0.9500, not 1 \(tolerance 0.01"):
        load_results(weights_table(tmp_path / "bad.parquet", weights, np.arange(16.0)), [], ["loss"], log=quiet)
    load_results(tmp_path / "bad.parquet", [], ["loss"], tolerance=0.06, log=quiet)  # a wider tolerance takes it


def test_loglinear_law_is_recovered_and_scored_in_the_kfold_table(tmp_path):
    from mixopt.loglinear import fit_loglinear, predict_loglinear

    rng = np.random.default_rng(1)
    weights = rng.dirichlet(np.ones(3), size=64)
    loss = 2.0 + np.exp(weights @ np.array([1.0, -2.0, 0.5]))
    params = fit_loglinear(weights, loss)
    assert params["c"] == pytest.approx(2.0, abs=1e-3)
    np.testing.assert_allclose(params["t"], [1.0, -2.0, 0.5], atol=1e-3)
    np.testing.assert_allclose(predict_loglinear(params, weights), loss, atol=1e-4)
    fit = run_fit(weights_table(tmp_path / "r.parquet", weights, loss), tmp_path / "fit",
                  FAST_FIT(target=["loss"]), log=quiet)
    assert set(fit["cv"]) == {"lightgbm", "linear", "loglinear"}
    assert fit["cv"]["loglinear"]["spearman"] > 0.999 and fit["better"] == "loglinear"
    assert fit["cv"]["loglinear"]["spearman"] > fit["cv"]["linear"]["spearman"]
    mixture = run_search(tmp_path / "fit", tmp_path / "s", SearchConfig(samples=5_000, top_k=10, regressor="loglinear"),
                         log=quiet)
    assert mixture["regressor"] == "loglinear" and mixture["weights"]["b"] > 0.9  # exp(-2 w_b) is least at b = 1
    chosen = np.array([list(mixture["weights"].values())])
    assert mixture["predicted_objective"] == pytest.approx(predict_loglinear(fit["loglinear"], chosen)[0], abs=1e-4)


def test_predict_scores_new_mixtures_and_reports_the_transfer(tmp_path, capsys):
    from mixopt.predict import PredictConfig, run_predict
    from workbench.cli import main

    run_fit(synthetic_results(tmp_path / "results.parquet"), tmp_path / "fit", FAST_FIT(target=["loss"]), log=quiet)
    new = np.random.default_rng(5).dirichlet(np.ones(3), size=12)
    weights_table(tmp_path / "new.parquet", new, ((new - OPTIMUM) ** 2).sum(axis=1))
    summary = run_predict(tmp_path / "fit", tmp_path / "new.parquet", tmp_path / "pred", PredictConfig(), log=quiet)
    assert summary["rows"] == 12 and summary["spearman"]["lightgbm"] > 0.8
    out = pq.read_table(tmp_path / "pred" / "data.parquet")
    assert out["run_id"].to_pylist() == [f"run-{i:04d}" for i in range(12)]
    assert {"pred_lightgbm", "pred_linear", "pred_loglinear", "objective"} <= set(out.column_names)
    np.testing.assert_allclose(out["w.a"].to_numpy(), new[:, 0])
    # without metric columns it only predicts; the best predicted row comes first in the printout
    write_table(pq.read_table(tmp_path / "new.parquet").drop_columns(["loss"]), tmp_path / "weights-only.parquet")
    assert main(["mix", "predict", str(tmp_path / "fit"), str(tmp_path / "weights-only.parquet")]) == 0
    printed = capsys.readouterr().out.splitlines()
    best = int(np.argmin(out["pred_lightgbm"].to_numpy()))
    assert printed[1].startswith(f"run-{best:04d}") and "rank correlation" not in "\n".join(printed)
    import mixopt  # the Python API: the same call, the same summary

    assert mixopt.predict_mixtures(mixopt.PredictConfig(), tmp_path / "fit", tmp_path / "new.parquet", log=quiet) == summary
    with pytest.raises(InputError, match="--weight-tolerance nan: must be a finite number"):
        mixopt.predict_mixtures(mixopt.PredictConfig(weight_tolerance=float("nan")), tmp_path / "fit",
                                tmp_path / "new.parquet", log=quiet)
    write_table(pq.read_table(tmp_path / "new.parquet").drop_columns(["w.c"]), tmp_path / "no-c.parquet")
    assert main(["mix", "predict", str(tmp_path / "fit"), str(tmp_path / "no-c.parquet")]) == 2
    assert "no column 'w.c'" in capsys.readouterr().err


def test_search_on_a_foreign_table_samples_where_its_mixtures_live(tmp_path):
    rng = np.random.default_rng(2)
    weights = rng.dirichlet(np.array([0.7, 0.2, 0.1]) * 40, size=96)  # a sweep around (0.7, 0.2, 0.1)
    loss = ((weights - np.array([0.6, 0.25, 0.15])) ** 2).sum(axis=1)
    run_fit(weights_table(tmp_path / "r.parquet", weights, loss), tmp_path / "fit", FAST_FIT(target=["loss"]),
            log=quiet)
    lines = []
    mixture = run_search(tmp_path / "fit", tmp_path / "s", SearchConfig(samples=20_000, top_k=50), log=lines.append)
    mean = weights.mean(axis=0)
    assert mixture["natural_source"] == "estimated: the mean of the 96 training mixtures"
    np.testing.assert_allclose(list(mixture["natural"].values()), mean, atol=1e-5)
    np.testing.assert_allclose(list(mixture["candidate_prior"].values()), mean, atol=1e-5)
    distance = mixture["distance_to_training"]
    chosen = np.array(list(mixture["weights"].values()))
    tv = 0.5 * np.abs(weights - chosen).sum(axis=1)
    assert distance["nearest"] == pytest.approx(tv.min(), abs=1e-4)
    assert distance["nearest_run"] == f"run-{int(np.argmin(tv)):04d}"
    assert any(line.startswith("distance to the nearest training mixture") for line in lines)
    mixture = run_search(tmp_path / "fit", tmp_path / "s2", SearchConfig(samples=5_000, top_k=20,
                                                                          natural=["a=0.5", "b=0.3", "c=0.2"]),
                         log=quiet)
    assert mixture["natural"] == {"a": 0.5, "b": 0.3, "c": 0.2} and mixture["natural_source"] == "--natural"
    with pytest.raises(InputError, match="--natural: the weights must be >= 0 and sum to 1; they sum to 0.7000"):
        run_search(tmp_path / "fit", tmp_path / "s3", SearchConfig(samples=100, top_k=5, natural=["a=0.7"]),
                   log=quiet)


def test_distance_to_training_on_known_points():
    from mixopt.search import distance_line, distance_to_training

    trained = np.eye(3)
    d = distance_to_training(np.array([0.5, 0.5, 0.0]), trained, ["x", "y", "z"], k=2)
    assert d == {"nearest_run": "x", "nearest": 0.5, "mean_2_nearest": 0.5, "typical_nearest": 1.0}
    far = distance_to_training(np.array([0.9, 0.1, 0.0]), np.array([[0.1, 0.1, 0.8], [0.1, 0.2, 0.7]]), ["p", "q"])
    assert "warning: the chosen mixture lies outside" in distance_line(far)


# --- Olmix lessons: proxy size, run count, reuse -----------------------------------------------------------


def test_gpu_proxy_preset_has_at_least_15m_parameters():
    from transformers import LlamaForCausalLM  # noqa: F401 - the count below is checked against a real model

    from mixopt.proxy import MODEL_SIZES, build_proxy, non_embedding_parameters

    assert non_embedding_parameters("gpu-20m") >= 15_000_000
    for size in ("tiny", "small"):  # the formula is the model's own count, less the tied byte embedding
        model = build_proxy(ProxyConfig(model_size=size))
        assert non_embedding_parameters(size) == sum(p.numel() for p in model.parameters()) - 256 * MODEL_SIZES[size][0]
    with pytest.raises(ValueError, match="torch sees no CUDA device"):
        import torch

        if torch.cuda.is_available():
            raise ValueError("torch sees no CUDA device (skipped: this host has one)")
        train_proxy({"a": np.zeros(100, np.uint8)}, {"a": 1.0}, {}, ProxyConfig(device="cuda", context=8))


def test_default_run_count_grows_with_the_domains(tmp_path, domains_yaml):
    from mixopt.plan import default_runs

    assert [default_runs(m) for m in (2, 4, 5, 17, 24)] == [48, 48, 50, 170, 240]
    plan = make_plan(domains_yaml, tmp_path / "plan", PlanConfig(tokens_per_run=4_096))
    assert plan["config"]["runs"] == 48
    assert pq.read_table(tmp_path / "plan" / "mixtures.parquet").num_rows == 48


def test_reuse_keeps_runs_whose_domains_still_apply(tmp_path, domains_yaml, capsys):
    # an earlier sweep over a, b, c and a removed domain z; c's data has changed since
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    rows = [{"w.a": 0.5, "w.b": 0.5, "w.c": 0.0, "w.z": 0.0, "status": "ok"},   # reused
            {"w.a": 0.3, "w.b": 0.7, "w.c": 0.0, "w.z": 0.0, "status": "ok"},   # reused
            {"w.a": 0.2, "w.b": 0.3, "w.c": 0.5, "w.z": 0.0, "status": "ok"},   # c changed
            {"w.a": 0.5, "w.b": 0.0, "w.c": 0.0, "w.z": 0.5, "status": "ok"},   # z removed
            {"w.a": 0.4, "w.b": 0.6, "w.c": 0.0, "w.z": 0.0, "status": "failed"}]
    write_table(pa.table({"run_id": [f"run-{i:04d}" for i in range(5)],
                          **{k: [r[k] for r in rows] for k in rows[0]},
                          "bpb.a": [1.0, 1.1, 1.2, 1.3, None], "bpb.c": [2.0, 2.1, 2.2, 2.3, None],
                          "bpb.target": [3.0, 3.1, 3.2, 3.3, None]}), earlier / "results.parquet")
    plan = make_plan(domains_yaml, tmp_path / "probe", PlanConfig(runs=4))
    (earlier / "plan.json").write_text(json.dumps({
        "tokens": {"a": plan["tokens"]["a"], "b": plan["tokens"]["b"], "c": {"train": 1}},
        "validation": plan["validation"]}))
    (earlier / "sweep.json").write_text(json.dumps({"context": 32}))
    new = make_plan(domains_yaml, tmp_path / "plan", PlanConfig(runs=30, reuse=str(earlier / "results.parquet")))
    assert new["reused"]["runs"] == 2 and new["reused"]["changed_domains"] == ["c"]
    assert new["reused"]["skipped"] == {"trained on a changed domain (c)": 1,
                                        "trained on a removed domain (z)": 1, "failed": 1}
    assert new["reused"]["fresh_runs"] == 28  # max(30 - 2, 10 x 1 domain without reused runs)
    mixtures = pq.read_table(tmp_path / "plan" / "mixtures.parquet")
    assert mixtures.num_rows == 30 and mixtures["run_id"].to_pylist()[-2:] == ["reuse-0000", "reuse-0001"]
    results = pq.read_table(tmp_path / "plan" / "results.parquet").to_pylist()
    assert [(r["w.a"], r["w.b"], r["w.c"]) for r in results] == [(0.5, 0.5, 0.0), (0.3, 0.7, 0.0)]
    assert [r["bpb.a"] for r in results] == [1.0, 1.1] and [r["bpb.target"] for r in results] == [3.0, 3.1]
    assert "bpb.c" not in results[0] or results[0]["bpb.c"] is None  # c changed: its old loss does not apply
    assert results[0]["reused_from"].endswith("results.parquet#run-0000")
    assert json.loads((tmp_path / "plan" / "sweep.json").read_text()) == {"context": 32}
    from workbench.cli import main

    (earlier / "sweep.json").write_text(json.dumps({"context": 32, "tokens_per_run": 4_096}))
    assert main(["mix", "plan", str(domains_yaml), "--output", str(tmp_path / "plan2"), "--runs", "12",
                 "--reuse", str(earlier / "results.parquet")]) == 0
    out = capsys.readouterr().out
    assert "reused 2 proxies of" in out and "1 failed" in out and "12 mixtures" in out and "(10 to train)" in out
    assert "plan with --tokens-per-run 4096" in out


@pytest.mark.slow  # trains 16 small proxies (~20 s on 2 cores)
def test_reuse_chain_trains_only_the_new_runs_and_fits_them_all(tmp_path, domains_yaml):
    make_plan(domains_yaml, tmp_path / "old", PlanConfig(runs=6, tokens_per_run=4_096))
    run_sweep(tmp_path / "old", SMALL, workers=2, log=quiet)
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"text": "delta epsilon " * 20}) + "\n" for _ in range(60)))
    yaml = domains_yaml.read_text().replace("validation:", "  d: d.jsonl\nvalidation:")
    (tmp_path / "domains4.yaml").write_text(yaml)
    plan = make_plan(tmp_path / "domains4.yaml", tmp_path / "new",
                     PlanConfig(runs=16, tokens_per_run=4_096, reuse=str(tmp_path / "old" / "results.parquet")))
    assert plan["reused"]["runs"] == 6 and plan["reused"]["fresh_runs"] == 10
    lines = []
    rows = run_sweep(tmp_path / "new", SMALL, workers=2, log=lines.append)
    assert lines[0].startswith("6 of 16 proxies already trained; training 10")
    assert len(rows) == 16 and all(r["status"] == "ok" for r in rows)
    fit = run_fit(tmp_path / "new" / "results.parquet", tmp_path / "fit", FAST_FIT(), log=quiet)  # bpb.target
    assert fit["runs"] == 16 and fit["excluded_failed_runs"] == 0
    fit_d = run_fit(tmp_path / "new" / "results.parquet", tmp_path / "fit-d", FAST_FIT(target=["bpb.d"]), log=quiet)
    assert fit_d["runs"] == 10 and fit_d["excluded_reused_runs"] == 6  # reused runs never saw d
    with pytest.raises(InputError, match="trained with context=32, not 64"):
        run_sweep(tmp_path / "new", replace(SMALL, context=64), log=quiet)


def test_a_regressor_with_constant_predictions_never_counts_as_better():
    from mixopt.fit import best_regressor

    nan = float("nan")
    assert best_regressor({"lightgbm": {"spearman": nan}, "linear": {"spearman": 0.2},
                           "loglinear": {"spearman": nan}}) == "linear"
    assert best_regressor({"lightgbm": {"spearman": 0.9}, "linear": {"spearman": 0.9},
                           "loglinear": {"spearman": 0.5}}) == "lightgbm"
def test_rounded_weights_sum_to_exactly_one():
    rng = np.random.default_rng(0)
    cases = [np.array([0.692312404, 0.235871303, 0.071816293]), np.ones(3), np.ones(7), np.array([1.0, 0.0, 0.0])]
    cases += [rng.dirichlet(np.ones(k)) for k in (2, 5, 11, 40) for _ in range(25)]
    for w in cases:
        written = rounded_weights([f"d{i}" for i in range(len(w))], w)
        assert sum(Decimal(str(v)) for v in written.values()) == 1
        assert all(v >= 0 for v in written.values())
        np.testing.assert_allclose(list(written.values()), w / w.sum(), atol=len(w) * 1e-6)
    assert rounded_weights(["a", "b", "c"], np.ones(3)) == {"a": 0.333334, "b": 0.333333, "c": 0.333333}


def test_mix_plan_overwrite_reaches_the_run_and_stays_out_of_the_plan(tmp_path, domains_yaml, capsys):
    from workbench.cli import main

    out = tmp_path / "plan"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    argv = ["mix", "plan", str(domains_yaml), "--output", str(out), "--runs", "6", "--tokens-per-run", "4096"]
    assert main(argv) == 2 and "not a wb run (notes.txt)" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0 and not (out / "notes.txt").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    plan = json.loads((out / "plan.json").read_text())
    assert manifest["overwrite"] is True and manifest["argv"] == ["wb", *argv, "--overwrite"]
    assert plan["config"]["runs"] == 6 and "overwrite" not in plan["config"] and "argv" not in plan["config"]
