"""Post-training filters on GSM8K answers with planted broken variants: precision and recall per filter.

    python bench/post_training_filters.py [--per-kind 100] [--seed 0]

All 7,473 GSM8K train rows (clean) plus `--per-kind` broken variants of each kind in `curate.planted`
(loops, truncations, unclosed <think>, refusals, boilerplate, other language or script, bad code, empty
turns, terse answers) and a control kind (`code_ok`, a valid Python block) that must be kept. Each filter
runs alone with the settings of examples/configs/curate-sft.yaml. Precision = broken rows among the rows
it drops (a clean or control row dropped is a false positive); recall = its own target kinds caught.
The web-text filters of examples/configs/curate.yaml (and the other Gopher/C4/FineWeb rules) run on the
same rows as the baseline, scored on all broken kinds. Rows/s are wall-clock on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pyarrow as pa
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BASELINES = {"gopher_repetition": {}, "gopher_quality": {}, "c4": {}, "fineweb": {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=100, help="broken variants planted per kind")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from curate.filters import build_filters
    from curate.planted import CONTROLS, TARGETS, plant
    from workbench.workspace import bundled_data_dir

    lines = (bundled_data_dir() / "gsm8k" / "train.jsonl").read_text().splitlines()
    rows = [{"id": f"gsm8k-{i}", **json.loads(line)} for i, line in enumerate(lines)]
    data = plant(rows, args.per_kind, seed=args.seed)
    table = pa.Table.from_pylist(data)
    kinds = dict(zip(table["id"].to_pylist(), table["kind"].to_pylist(), strict=True))
    clean_kinds = {"clean", *CONTROLS}
    config = yaml.safe_load((ROOT / "examples" / "configs" / "curate-sft.yaml").read_text())
    print(f"{len(rows):,} clean GSM8K rows + {args.per_kind} planted rows x {len(TARGETS)} broken kinds "
          f"+ {args.per_kind} x {len(CONTROLS)} control kinds = {table.num_rows:,} rows\n")
    header = f"{'filter':<24}{'dropped':>8}{'clean':>7}{'precision':>10}{'recall':>8}{'rows/s':>10}  also drops"
    print(header)
    print("-" * len(header))
    post = list(config["filters"])
    for name in post + list(BASELINES):
        settings = config["filter_settings"].get(name, {}) if name in post else BASELINES[name]
        (step,) = build_filters([name], {name: settings}, ["question", "answer"])
        started = time.perf_counter()
        _, removed = step.process(table)
        seconds = time.perf_counter() - started
        dropped = [kinds[i] for i in (removed["id"].to_pylist() if removed is not None else [])]
        targets = {k for k, f in TARGETS.items() if f == name} or set(TARGETS)  # baselines: every broken kind
        false = sum(k in clean_kinds for k in dropped)
        precision = (len(dropped) - false) / len(dropped) if dropped else float("nan")
        recall = sum(k in targets for k in dropped) / (args.per_kind * len(targets))
        others = sorted({k for k in dropped if k not in targets and k not in clean_kinds})
        label = name if name in post else f"{name} (web)"
        print(f"{label:<24}{len(dropped):>8}{false:>7}{precision:>10.3f}{recall:>8.3f}"
              f"{table.num_rows / seconds:>10,.0f}  {', '.join(others)}")
    print("\nclean = clean GSM8K or control rows dropped (false positives); web filters' recall is over all "
          "broken kinds.")


if __name__ == "__main__":
    main()
