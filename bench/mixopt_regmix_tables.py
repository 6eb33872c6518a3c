"""`wb mix fit|search|predict` on RegMix's own released tables (a bring-your-own table, rounded weights).

    python bench/mixopt_regmix_tables.py --data PATH/TO/regmix/data [--target pile_cc] [--out /tmp/regmix-bench]

PATH/TO/regmix/data is the `data/` folder of a checkout of sail-sg/regmix (MIT): 512 1M-parameter proxy
runs to fit (train_mixture_1m.csv + train_pile_loss_1m.csv), 256 more 1M runs and 64 1B-parameter runs
on other mixtures to predict. Their weights are rounded to 3 decimals (rows sum to 0.996-1.003), so
the fit renormalises them with one warning line. Prints each regressor's k-fold rank correlation on the
512 runs and its rank correlation with the true losses of the 1M and 1B test runs (`wb mix predict`),
then the searched mixture, its natural reference (estimated from the table) and its distance to the
training mixtures, and the top of the mixtures the log-linear and linear regressors choose.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pv

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def regmix_table(data: Path, mixtures: str, losses: str, out: Path) -> Path:
    """One parquet table: w.<domain> from the mixture CSV, loss.<domain> from the loss CSV, joined on index."""
    from workbench.io import write_table

    mix = pv.read_csv(data / mixtures)
    loss = pv.read_csv(data / losses)
    columns = {"run_id": [f"run-{i}" for i in mix["index"].to_pylist()]}
    columns |= {f"w.{c.removeprefix('train_the_pile_')}": mix[c] for c in mix.column_names if c != "index"}
    by_index = dict(zip(loss["index"].to_pylist(), range(loss.num_rows), strict=True))
    order = pa.array([by_index[i] for i in mix["index"].to_pylist()])
    for c in loss.column_names:
        if c != "index":
            name = c.removeprefix("metric/the_pile_").removesuffix("_val_loss")
            columns[f"loss.{name}"] = loss[c].take(order)
    write_table(pa.table(columns), out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the data/ folder of a sail-sg/regmix checkout")
    parser.add_argument("--target", default="pile_cc", help="domain whose validation loss is the objective")
    parser.add_argument("--out", help="folder for the tables and runs (default: a temporary one)")
    args = parser.parse_args()
    from mixopt.fit import FitConfig, run_fit
    from mixopt.predict import PredictConfig, run_predict
    from mixopt.search import SearchConfig, run_search

    data = Path(args.data)
    out = Path(args.out or tempfile.mkdtemp(prefix="regmix-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    train = regmix_table(data, "train_mixture_1m.csv", "train_pile_loss_1m.csv", out / "train_1m.parquet")
    tests = {"1M test": regmix_table(data, "test_mixture_1m.csv", "test_pile_loss_1m.csv", out / "test_1m.parquet"),
             "1B test": regmix_table(data, "test_mixture_1B.csv", "test_pile_loss_1B.csv", out / "test_1b.parquet")}
    target = f"loss.{args.target}"
    fit = run_fit(train, out / "fit", FitConfig(target=[target]))
    transfer = {name: run_predict(out / "fit", path, None, PredictConfig(), log=lambda *_: None)["spearman"]
                for name, path in tests.items()}
    print(f"\n{target}: rank correlation (Spearman) of each regressor's predictions with the true losses\n")
    print(f"| regressor | 8-fold CV on 512 1M runs | {' | '.join(tests)} |\n|---|---|" + "---|" * len(tests))
    for name in fit["cv"]:
        print(f"| {name} | {fit['cv'][name]['spearman']:.3f} | "
              + " | ".join(f"{transfer[t][name]:.3f}" for t in tests) + " |")
    print()
    run_search(out / "fit", out / "search", SearchConfig(samples=100_000, top_k=128))
    for name in ("loglinear", "linear"):
        mixture = run_search(out / "fit", out / f"search-{name}", SearchConfig(samples=100_000, top_k=128,
                                                                                  regressor=name), log=lambda *_: None)
        top = sorted(mixture["weights"].items(), key=lambda kv: -kv[1])[:3]
        print(f"--regressor {name}: " + ", ".join(f"{d} {w:.3f}" for d, w in top))


if __name__ == "__main__":
    main()
