"""`wb mix build`: materialise a mixed text corpus from a mixture, ready for `wb train`.

Each domain contributes whole documents until its share of `--tokens` (UTF-8 bytes, the proxies' unit)
is reached, the last one cut to fit (`truncated`): one shuffled pass first, further passes only up to
the plan's epoch cap. Rows keep their
lineage (`source_id`, `domain`, `epoch`) and are shuffled together.

    wb mix build runs/mix-search/mixture.json --output runs/mix-corpus --tokens 2000000
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mixopt.domains import DomainSpec, is_heldout, read_texts
from workbench.config import option
from workbench.errors import InputError
from workbench.io import write_table
from workbench.rundir import RunDir


@dataclass
class BuildConfig:
    tokens: int = option(1_000_000, "corpus size in tokens (UTF-8 bytes)", min=1)
    seed: int = option(0, "shuffling seed")
    include_heldout: bool = option(False, "also draw from the documents the plan held out for evaluation")


def take_documents(lengths: np.ndarray, budget: int, max_epochs: float, rng: np.random.Generator,
                   name: str) -> tuple[np.ndarray, np.ndarray, int | None]:
    """(document indices, epoch of each, bytes to keep of the last one or None) adding up to `budget`.

    Whole documents are taken in shuffled passes; the one that crosses the budget is cut, so a domain
    of a few long documents still gets its exact share.
    """
    total = int(lengths.sum())
    if budget <= 0:
        return np.zeros(0, int), np.zeros(0, int), None
    if total == 0:
        raise InputError(f"domain {name!r} has no tokens to draw from")
    epochs_needed = budget / total
    if epochs_needed > max_epochs + 1e-9:
        raise InputError(f"domain {name!r} would need {epochs_needed:.2f} epochs of its {total:,} tokens "
                         f"(max_epochs {max_epochs:g}); lower --tokens or its weight")
    picks, epochs = [], []
    taken = 0
    epoch = 0
    while True:
        order = rng.permutation(len(lengths))
        cumulative = taken + np.cumsum(lengths[order])
        stop = int(np.searchsorted(cumulative, budget))  # first document reaching the budget
        if stop < len(order):
            picks.append(order[: stop + 1])
            epochs.append(np.full(stop + 1, epoch))
            before = int(cumulative[stop - 1]) if stop > 0 else taken
            cut = None if cumulative[stop] == budget else budget - before
            return np.concatenate(picks), np.concatenate(epochs), cut
        picks.append(order)
        epochs.append(np.full(len(order), epoch))
        taken = int(cumulative[-1])
        epoch += 1


def cut_text(text: str, max_bytes: int) -> str:
    """The longest prefix of `text` within `max_bytes` UTF-8 bytes, ended at a line break when there is one."""
    prefix = text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")
    newline = prefix.rfind("\n")
    return prefix[: newline + 1] if newline > len(prefix) // 2 else prefix


def read_mixture(mixture_path: str | Path) -> dict:
    """A mixture.json (from `wb mix search`, or written by hand): checked weights and the plan it names."""
    mixture_path = Path(mixture_path)
    if not mixture_path.is_file():
        raise InputError(f"{mixture_path}: no such file (expected mixture.json from `wb mix search`)")
    try:
        mixture = json.loads(mixture_path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{mixture_path}: not valid JSON ({exc.msg})") from None
    weights = mixture.get("weights") if isinstance(mixture, dict) else None
    if not isinstance(weights, dict) or not weights or not all(
            isinstance(v, int | float) and v >= 0 for v in weights.values()):
        raise InputError(f"{mixture_path}: expected {{\"weights\": {{domain: weight >= 0}}, \"plan_dir\": ...}} "
                         "as `wb mix search` writes")
    total = sum(weights.values())
    if abs(total - 1) > 1e-3:
        raise InputError(f"{mixture_path}: weights sum to {total:.4f}, not 1")
    return mixture


def run_build(mixture_path: str | Path, output: str | Path, config: BuildConfig, log=print) -> dict:
    """Write the mixed corpus as a run directory; return per-domain counts."""
    mixture_path = Path(mixture_path)
    mixture = read_mixture(mixture_path)
    weights = mixture["weights"]
    plan_dir = mixture.get("plan_dir")
    if not plan_dir or not (Path(plan_dir) / "plan.json").exists():
        raise InputError(f"{mixture_path}: names no plan directory with plan.json (needed for the domains' sources)")
    plan = json.loads((Path(plan_dir) / "plan.json").read_text())
    specs = {d["name"]: DomainSpec(**d) for d in plan["domains"]}
    unknown = sorted(set(weights) - set(specs))
    if unknown:
        raise InputError(f"{mixture_path}: domain {unknown[0]!r} is not in the plan ({sorted(specs)})")
    rng = np.random.default_rng(config.seed)
    heldout_fraction = plan.get("heldout_fraction", 0.05)
    tables, counts = [], {}
    with RunDir(output, "mix-build", config, inputs=[{"path": str(mixture_path), "weights": weights}]) as run:
        for name, weight in weights.items():
            texts = read_texts(specs[name])
            if not config.include_heldout:
                texts = pc.filter(texts, pa.array(~is_heldout(texts, heldout_fraction)))
            lengths = pc.binary_length(texts.cast(pa.binary())).to_numpy(zero_copy_only=False).astype(np.int64)
            budget = int(round(weight * config.tokens))
            picks, epochs, cut = take_documents(lengths, budget, plan["constraints"]["max_epochs"], rng, name)
            chosen = texts.take(pa.array(picks, pa.int64()))
            truncated = np.zeros(len(picks), bool)
            if cut is not None:
                last = cut_text(chosen[-1].as_py(), cut)
                chosen = pa.concat_arrays([chosen.slice(0, len(chosen) - 1), pa.array([last], chosen.type)])
                truncated[-1] = True
            tokens = int(pc.sum(pc.binary_length(chosen.cast(pa.binary()))).as_py() or 0)
            counts[name] = {"weight": weight, "documents": int(len(picks)), "tokens": tokens,
                            "epochs": round(tokens / max(1, int(lengths.sum())), 3)}
            tables.append(pa.table({
                "id": pa.array([f"{name}/{i}#{e}" for i, e in zip(picks.tolist(), epochs.tolist(), strict=True)],
                               pa.string()),
                "text": chosen.cast(pa.string()),
                "domain": pa.array([name] * len(picks), pa.string()),
                "source_id": pa.array([f"{name}/{i}" for i in picks.tolist()], pa.string()),
                "epoch": pa.array(epochs, pa.int32()),
                "truncated": pa.array(truncated, pa.bool_()),
            }))
        corpus = pa.concat_tables(tables)
        corpus = corpus.take(pa.array(rng.permutation(corpus.num_rows)))
        write_table(corpus, run.product)
        built = sum(c["tokens"] for c in counts.values())
        for c in counts.values():
            c["share"] = round(c["tokens"] / max(1, built), 4)
        run.finish(rows_out=corpus.num_rows, domains=counts, tokens=built)
    log(f"{'domain':<16} {'target':>8} {'built':>8} {'docs':>8} {'epochs':>7}")
    for name, c in counts.items():
        log(f"{name:<16} {c['weight']:>8.3f} {c['share']:>8.3f} {c['documents']:>8,} {c['epochs']:>7.2f}")
    log(f"{corpus.num_rows:,} documents, {built:,} tokens -> {Path(output) / 'data.parquet'}")
    return counts
