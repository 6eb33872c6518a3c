"""`wb mix build`: materialise a mixture as a corpus `wb train` reads: a text corpus, or SFT rows.

Size: `--tokens N` (UTF-8 bytes of the domains' text field, the proxies' unit; the default, 1,000,000) gives
each domain whole documents until its share is reached, the last one cut to fit (`truncated`); `--rows N`
gives each domain round(weight x N) whole rows (largest remainders, so they add up to N), the unit of SFT
data. Either way one shuffled pass first, further passes only up to the plan's epoch cap; rows are
shuffled together.

Columns: `text` (the domain's field) and lineage (`id`, `domain`, `source_id`, `epoch`, `truncated`),
plus the source columns every weighted domain has (question/answer, prompt/completion, messages...), so
`wb train sft --data RUN --prompt-field question --completion-field answer` trains on the build as it is.
Columns only some domains have are dropped, and the log and manifest name them; `--columns a b` keeps
exactly those and refuses a domain that lacks one. `source_id` is the source row's `id` when every weighted
domain has that column, else `<domain>/<index>`.

    wb mix build runs/mix-search/mixture.json --output runs/mix-corpus --tokens 2000000
    wb mix build runs/mix-search/mixture.json --output runs/mix-sft --rows 3000 --columns question answer
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mixopt.domains import DomainSpec, is_heldout, read_rows, source_columns
from workbench.config import RunOptions, option
from workbench.errors import InputError
from workbench.io import write_table
from workbench.rundir import RunDir
from workbench.runfiles import MIXTURE, PLAN, read_json

DEFAULT_TOKENS = 1_000_000
LINEAGE = ("id", "domain", "source_id", "epoch", "truncated")  # columns the build writes itself, with text


@dataclass
class BuildConfig(RunOptions):
    tokens: int | None = option(None, f"corpus size in tokens (UTF-8 bytes of the text field; default "
                                      f"{DEFAULT_TOKENS:,} unless --rows is given)", min=1)
    rows: int | None = option(None, "corpus size in rows instead of tokens: round(weight x N) whole rows per domain "
                                    "(for SFT rows)", min=1)
    columns: list[str] = option([], "source columns to keep beside text, e.g. question answer (default: every "
                                    "column all weighted domains have); a domain lacking one is refused")
    seed: int = option(0, "shuffling seed")
    include_heldout: bool = option(False, "also draw from the documents the plan held out for evaluation")

    def size(self) -> tuple[str, int]:
        """("tokens" or "rows", N); InputError when both are given."""
        if self.tokens is not None and self.rows is not None:
            raise InputError(f"--tokens {self.tokens} and --rows {self.rows}: size the corpus by one of them")
        return ("rows", self.rows) if self.rows is not None else ("tokens", self.tokens or DEFAULT_TOKENS)


def row_quotas(weights: dict[str, float], rows: int) -> dict[str, int]:
    """Rows per domain: weight x `rows` rounded by largest remainders (ties to the earlier domain), so the
    quotas add up to exactly `rows` and a zero weight gets none."""
    total = sum(weights.values())
    exact = {n: w / total * rows for n, w in weights.items()}
    quotas = {n: int(np.floor(x)) for n, x in exact.items()}
    order = sorted((n for n in weights if weights[n] > 0), key=lambda n: -(exact[n] - quotas[n]))
    for name in order[: rows - sum(quotas.values())]:
        quotas[name] += 1
    return quotas


def plan_columns(specs: list[DomainSpec], asked: list[str]) -> tuple[list[str], dict[str, list[str]], bool]:
    """(source columns to keep, columns dropped per domain, whether the sources' `id` becomes `source_id`)
    for the weighted domains `specs`; InputError for an asked column a domain lacks or the build writes."""
    have = {s.name: source_columns(s) for s in specs}
    from_source = all("id" in cols for cols in have.values())
    taken = [c for c in asked if c in LINEAGE]
    if taken:
        raise InputError(f"--columns {taken[0]}: the build writes that column itself ({', '.join(LINEAGE)}; a source's "
                         "own id becomes source_id when every domain has one)")
    if asked:
        keep = list(dict.fromkeys(c for c in asked if c != "text"))
        for spec in specs:
            missing = [c for c in keep if c not in have[spec.name]]
            if missing:
                raise InputError(f"--columns {missing[0]}: domain {spec.name!r} ({', '.join(spec.sources)}) has no such "
                                 f"column; it has {have[spec.name]}")
    else:
        keep = [c for c in have[specs[0].name] if c not in (*LINEAGE, "text") and all(c in v for v in have.values())]
    dropped = {s.name: [c for c in have[s.name] if c not in (*keep, *LINEAGE, "text", s.field)] for s in specs}
    return keep, {n: cols for n, cols in dropped.items() if cols}, from_source


def take_documents(lengths: np.ndarray, budget: int, max_epochs: float, rng: np.random.Generator,
                   name: str, unit: str = "tokens") -> tuple[np.ndarray, np.ndarray, int | None]:
    """(document indices, epoch of each, bytes to keep of the last one or None) adding up to `budget`.

    Whole documents are taken in shuffled passes; the one that crosses the budget is cut, so a domain
    of a few long documents still gets its exact share. With `unit` "rows" every length is 1, so exactly
    `budget` rows are taken and none is cut.
    """
    total = int(lengths.sum())
    if budget <= 0:
        return np.zeros(0, int), np.zeros(0, int), None
    if total == 0:
        raise InputError(f"domain {name!r} has no {unit} to draw from")
    epochs_needed = budget / total
    if epochs_needed > max_epochs + 1e-9:
        raise InputError(f"domain {name!r} would need {epochs_needed:.2f} epochs of its {total:,} {unit} "
                         f"(max_epochs {max_epochs:g}); lower --{unit} or its weight")
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
    mixture = read_json(mixture_path) if not mixture_path.is_dir() else None
    if mixture is None:
        raise InputError(f"{mixture_path}: no such file (expected {MIXTURE} from `wb mix search`)")
    weights = mixture.get("weights")
    if not isinstance(weights, dict) or not weights or not all(
            isinstance(v, int | float) and v >= 0 for v in weights.values()):
        raise InputError(f"{mixture_path}: expected {{\"weights\": {{domain: weight >= 0}}, \"plan_dir\": ...}} "
                         "as `wb mix search` writes")
    total = sum(weights.values())
    if abs(total - 1) > 1e-3:
        raise InputError(f"{mixture_path}: weights sum to {total:.4f}, not 1")
    return mixture


def run_build(mixture_path: str | Path, output: str | Path, config: BuildConfig, log=print) -> dict:
    """Write the mixed corpus as a run directory; return per-domain counts. Bad input raises `InputError`."""
    unit, size = config.size()
    mixture_path = Path(mixture_path)
    mixture = read_mixture(mixture_path)
    weights = mixture["weights"]
    plan_dir = mixture.get("plan_dir")
    plan = read_json(Path(plan_dir) / PLAN) if plan_dir else None
    if plan is None:
        raise InputError(f"{mixture_path}: names no plan directory with {PLAN} (needed for the domains' sources)")
    specs = {d["name"]: DomainSpec(**d) for d in plan["domains"]}
    unknown = sorted(set(weights) - set(specs))
    if unknown:
        raise InputError(f"{mixture_path}: domain {unknown[0]!r} is not in the plan ({sorted(specs)})")
    quotas = row_quotas(weights, size) if unit == "rows" else {n: int(round(w * size)) for n, w in weights.items()}
    keep, dropped, ids = plan_columns([specs[n] for n, q in quotas.items() if q > 0], config.columns)
    rng = np.random.default_rng(config.seed)
    heldout_fraction = plan.get("heldout_fraction", 0.05)
    tables, counts = [], {}
    with RunDir(output, "mix-build", config, inputs=[{"path": str(mixture_path), "weights": weights}]) as run:
        for name, weight in weights.items():
            if quotas[name] == 0:
                counts[name] = {"weight": weight, "documents": 0, "tokens": 0, "epochs": 0.0}
                continue
            part, counts[name] = draw_domain(specs[name], quotas[name], unit, keep, ids, plan, heldout_fraction,
                                             config.include_heldout, rng)
            counts[name]["weight"] = weight
            tables.append(part)
        try:
            corpus = pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InputError(f"the domains disagree on a kept column's type ({exc}); pass --columns to keep others") \
                from None
        corpus = corpus.take(pa.array(rng.permutation(corpus.num_rows)))
        write_table(corpus, run.product)
        measure = "tokens" if unit == "tokens" else "documents"  # what the shares are shares of
        built = sum(c[measure] for c in counts.values())
        for c in counts.values():
            c["share"] = round(c[measure] / max(1, built), 4)
        tokens = sum(c["tokens"] for c in counts.values())
        run.finish(rows_out=corpus.num_rows, domains=counts, tokens=tokens, size={unit: size}, columns=keep,
                   dropped_columns=dropped)
    log(f"{'domain':<16} {'target':>8} {'built':>8} {'docs':>8} {'epochs':>7}")
    for name, c in counts.items():
        log(f"{name:<16} {c['weight']:>8.3f} {c['share']:>8.3f} {c['documents']:>8,} {c['epochs']:>7.2f}")
    if dropped:
        log("columns not in every domain, dropped: " + "; ".join(f"{n}: {', '.join(c)}" for n, c in dropped.items()))
    kept = f"text, {', '.join(keep)}" if keep else "text"
    log(f"{corpus.num_rows:,} rows, {tokens:,} tokens ({kept}) -> {Path(output) / 'data.parquet'}")
    return counts


def draw_domain(spec: DomainSpec, quota: int, unit: str, keep: list[str], ids: bool, plan: dict,
                heldout_fraction: float, include_heldout: bool, rng: np.random.Generator) -> tuple[pa.Table, dict]:
    """(one domain's drawn rows with lineage, its counts): `quota` tokens or rows (`unit`) of its training rows."""
    name = spec.name
    rows = read_rows(spec, [*keep, *(["id"] if ids else [])])
    if not include_heldout:
        rows = rows.filter(pa.array(~is_heldout(rows.column("text").combine_chunks(), heldout_fraction)))
    text = rows.column("text").combine_chunks()
    size = pc.binary_length(text.cast(pa.binary())).to_numpy(zero_copy_only=False).astype(np.int64)
    lengths = size if unit == "tokens" else np.ones(len(size), np.int64)
    picks, epochs, cut = take_documents(lengths, quota, plan["constraints"]["max_epochs"], rng, name, unit)
    chosen = rows.take(pa.array(picks, pa.int64()))
    texts = chosen.column("text").combine_chunks()
    truncated = np.zeros(len(picks), bool)
    if cut is not None:
        last = cut_text(texts[-1].as_py(), cut)
        texts = pa.concat_arrays([texts.slice(0, len(texts) - 1), pa.array([last], texts.type)])
        truncated[-1] = True
    tokens = int(pc.sum(pc.binary_length(texts.cast(pa.binary()))).as_py() or 0)
    available = int(lengths.sum())
    counts = {"documents": int(len(picks)), "tokens": tokens,
              "epochs": round((tokens if unit == "tokens" else len(picks)) / max(1, available), 3)}
    source_id = (pc.cast(chosen.column("id"), pa.string()) if ids
                 else pa.array([f"{name}/{i}" for i in picks.tolist()], pa.string()))
    part = pa.table({
        "id": pa.array([f"{name}/{i}#{e}" for i, e in zip(picks.tolist(), epochs.tolist(), strict=True)], pa.string()),
        "text": texts.cast(pa.string()),
        **{c: chosen.column(c) for c in keep},
        "domain": pa.array([name] * len(picks), pa.string()),
        "source_id": source_id,
        "epoch": pa.array(epochs, pa.int32()),
        "truncated": pa.array(truncated, pa.bool_()),
    })
    return part, counts
