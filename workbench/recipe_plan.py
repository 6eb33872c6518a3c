"""`wb recipe plan`: what each step of a recipe will ask of models and trainers before anything is spent:
requests, prompt (prefill) and sampled tokens, trained tokens and cost, each as a low-high range.

Generation steps (distill, prefs, eval) count their prompts (the source's rows, or the planned output of
the step they come from; `limit` applied), times `n`. Prompt tokens: a sample of up to 32 prompts rendered
with the model's own chat template when the model is a local directory (else 4 characters a token, within
0.6x-1.5x). Sampled tokens: the mean completion length in earlier runs' ledgers of the same command and model
in the workspace (0.5x-2x of it, at most `max_tokens`), else 1 to `max_tokens` per sample. Requests run from
one per prompt (a backend with native `n`) to one per sample. Trainers: steps x sequences per step, each
between the sampled rows' completion tokens and `max_length`; RL adds its rollouts. A step with a complete
run shows what it measured. Prices: the step's own `price_*` options (the recipe's `prices` fill them in).
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from workbench.errors import InputError
from workbench.recipe import Recipe, Resolved, resolve
from workbench.rundir import read_manifest
from workbench.runfiles import MANIFEST, run_state
from workbench.workspace import bundled_data_dir

LEDGER = "ledger.sqlite"  # llm.ledger.LEDGER: the generation ledger's file in a run directory
SAMPLE = 32
GENERATION = {("distill",), ("prefs",), ("eval",)}
Range = tuple[float, float]


@dataclass
class Estimate:
    """One step's line of the plan: each quantity as (low, high); `basis` says where the numbers come from."""

    step: str
    command: str
    state: str = "to run"  # "measured" for a step with a complete run
    rows: Range = (0, 0)  # rows (prompts, examples) the step reads
    rows_out: Range = (0, 0)  # rows it is expected to write (what a step reading it will count)
    requests: Range = (0, 0)
    prefill_tokens: Range = (0, 0)
    sampled_tokens: Range = (0, 0)
    trained_tokens: Range = (0, 0)
    cost_usd: Range | None = None
    basis: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # files a data step reads: prompts are sampled there
    model: str | None = None  # what a training step starts from: its model's tokenizer is this one's


def plan(recipe: Recipe) -> list[Estimate]:
    """Every step's estimate, in dependency order (nothing runs; earlier runs are only read)."""
    dirs: dict[str, Path | None] = {}
    planned: dict[str, Estimate] = {}
    for step in recipe.steps.values():
        r = resolve(recipe, step, dirs)
        run = r.run_dir(recipe.workspace)
        dirs[step.name] = run
        if run is not None and (run / MANIFEST).exists() and run_state(run).state == "complete":
            planned[step.name] = _measured(r, run)
        else:
            planned[step.name] = _estimate(recipe, r, planned)
    return list(planned.values())


def total(estimates: list[Estimate]) -> Estimate:
    """The recipe's total: every range summed (cost None when no step is priced)."""
    out = Estimate("total", "")
    for e in estimates:
        for name in ("requests", "prefill_tokens", "sampled_tokens", "trained_tokens"):
            setattr(out, name, _add(getattr(out, name), getattr(e, name)))
        if e.cost_usd is not None:
            out.cost_usd = _add(out.cost_usd or (0.0, 0.0), e.cost_usd)
    return out


def _add(a: Range, b: Range) -> Range:
    return (a[0] + b[0], a[1] + b[1])


def _measured(r: Resolved, run: Path) -> Estimate:
    m = read_manifest(run)
    u = m.get("usage") or {}
    e = Estimate(r.step.name, " ".join(r.step.command), "measured")
    for name in ("requests", "prefill_tokens", "sampled_tokens", "trained_tokens"):
        setattr(e, name, (u.get(name) or 0,) * 2)
    e.rows = (m.get("rows_in") or 0,) * 2
    e.rows_out = (m.get("rows_out") or 0,) * 2
    e.cost_usd = None if u.get("cost_usd") is None else (u["cost_usd"],) * 2
    e.basis.append(f"measured: the complete run {run}")
    return e


def _estimate(recipe: Recipe, r: Resolved, planned: dict[str, Estimate]) -> Estimate:
    e = Estimate(r.step.name, " ".join(r.step.command))
    o = r.options
    if r.step.command in GENERATION:
        _generation(recipe, r, e, planned)
    elif r.step.command[0] == "train":
        _training(r, e, planned)
    else:  # data steps write at most what they read
        sources = o.get("sources") or o.get("source") or []
        sources = sources if isinstance(sources, list) else [sources]
        e.rows = _rows_of(sources, r, planned, None)
        e.sources = [str(p) for p in (_source_path(s, r.base) for s in sources) if p is not None]
        e.rows_out = (0, e.rows[1])
        e.basis.append("no model calls")
    return e


def _generation(recipe: Recipe, r: Resolved, e: Estimate, planned: dict[str, Estimate]) -> None:
    o = r.options
    n = int(o.get("n") or 1)
    max_tokens = int(o.get("max_tokens") or 1)
    if r.step.command == ("eval",):
        sources, models = list(o.get("benchmark") or []), [str(o.get("model") or "")]
    elif r.step.command == ("prefs",):
        sources = [o.get("prompts")]
        models = [str(m) for m in (o.get("strong_model"), o.get("weak_model")) if m]
    else:
        sources, models = [o.get("prompts")], [str(o.get("model") or "")]
    limit = o.get("limit")
    prompts = _rows_of([s for s in sources if s], r, planned, int(limit) if limit else None)
    e.rows = prompts
    e.rows_out = (0, prompts[1] * n)
    price_in, price_out = o.get("price_in"), o.get("price_out")
    cost: Range = (0.0, 0.0)
    for model in models:
        tokens, how = _prompt_tokens(sources, r, model, planned)
        mean, seen = _earlier_completions(recipe.workspace, r.step.command, model)
        if mean is None:
            per_sample: Range = (1, max_tokens)
            e.basis.append(f"{model or 'model'}: no earlier run, so 1 to max_tokens {max_tokens} per sample")
        else:
            per_sample = (min(0.5 * mean, max_tokens), min(2 * mean, max_tokens))
            e.basis.append(f"{model or 'model'}: completions average {mean:.1f} tokens in {seen:,} earlier samples")
        e.basis.append(f"prompt tokens {tokens[0]:.1f}-{tokens[1]:.1f} each ({how})")
        requests = (prompts[0], prompts[1] * n)
        prefill = (prompts[0] * tokens[0], prompts[1] * n * tokens[1])
        sampled = (prompts[0] * n * per_sample[0], prompts[1] * n * per_sample[1])
        e.requests, e.prefill_tokens, e.sampled_tokens = (_add(e.requests, requests), _add(e.prefill_tokens, prefill),
                                                          _add(e.sampled_tokens, sampled))
        cost = _add(cost, (_usd(prefill[0], price_in) + _usd(sampled[0], price_out),
                           _usd(prefill[1], price_in) + _usd(sampled[1], price_out)))
    e.cost_usd = cost if price_in is not None or price_out is not None else None
    e.basis.insert(0, f"{prompts[1]:,.0f} prompts x n {n} x {len(models)} model(s)")


def _training(r: Resolved, e: Estimate, planned: dict[str, Estimate]) -> None:
    o = r.options
    e.model = str(o.get("model") or "") or None
    seqs = int(o.get("batch_size") or 1) * int(o.get("grad_accum") or 1)
    max_length = int(o.get("max_length") or 1)
    rl = "num_generations" in o
    data = o.get("prompts") if rl else o.get("data")
    rows = _rows_of([data] if data else [], r, planned, None)
    e.rows = rows
    if o.get("max_steps"):
        steps: Range = (int(o["max_steps"]),) * 2
    elif rl:
        steps = (0, 0)
        e.basis.append("no --max-steps: an RL run's length is not known ahead")
    else:
        epochs = float(o.get("epochs") or 1.0)
        steps = (math.ceil(epochs * rows[0] / seqs), math.ceil(epochs * rows[1] / seqs))
    if rl:
        groups = int(o.get("prompts_per_step") or 1) * int(o.get("num_generations") or 1)
        new = int(o.get("max_new_tokens") or 1)
        # DAPO's dynamic sampling draws up to max_sampling_attempts rounds a step to refill dropped groups
        rounds = int(o.get("max_sampling_attempts") or 1) if o.get("dynamic_sampling") else 1
        e.sampled_tokens = (steps[0] * groups, steps[1] * groups * new * rounds)
        e.trained_tokens = (steps[0] * groups, steps[1] * groups * new)
        e.basis.append(f"{steps[1]:,} steps x {groups} rollouts of 1 to {new} tokens"
                       + (f", up to {rounds} sampling rounds a step" if rounds > 1 else ""))
    else:
        per_seq, how = _sft_tokens(r, data, planned, max_length)
        e.trained_tokens = (steps[0] * seqs * per_seq[0], steps[1] * seqs * per_seq[1])
        e.basis.append(f"{steps[1]:,} steps x {seqs} sequences of {per_seq[0]:.0f}-{per_seq[1]:.0f} trained tokens "
                       f"({how})")
    price_t, price_s = o.get("price_trained"), o.get("price_sampled")
    if price_t is not None or price_s is not None:
        e.cost_usd = (_usd(e.trained_tokens[0], price_t) + _usd(e.sampled_tokens[0], price_s),
                      _usd(e.trained_tokens[1], price_t) + _usd(e.sampled_tokens[1], price_s))


def _sft_tokens(r: Resolved, data: object, planned: dict[str, Estimate], max_length: int) -> tuple[Range, str]:
    """(low, high) trained tokens per sequence: the assistant tokens of sampled rows under the model's chat
    template (the fewest and most of the sample), else 1 to `max_length`."""
    o = r.options
    fallback = (1.0, float(max_length)), f"1 to max_length {max_length}"
    model_dir = _model_dir(str(o.get("model") or ""), r.base, planned)
    prompt_field, completion_field = str(o.get("prompt_field") or "prompt"), str(o.get("completion_field") or "")
    table = _sample_table([data], r.base, planned)
    if model_dir is None or table is None:
        return fallback
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model_dir)
        counts = []
        for row in table.slice(0, SAMPLE).to_pylist():
            if isinstance(row.get("messages"), list):
                full, prompt = row["messages"], row["messages"][:-1]
            elif prompt_field in row and completion_field in row:
                prompt = [{"role": "user", "content": str(row[prompt_field])}]
                full = [*prompt, {"role": "assistant", "content": str(row[completion_field])}]
            else:
                return fallback
            total = len(_ids(tok.apply_chat_template(full, tokenize=True)))
            asked = len(_ids(tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)))
            counts.append(max(1, min(total, max_length) - asked))
    except Exception as exc:  # no usable tokenizer or template: say so and keep the wide range
        return fallback[0], f"{fallback[1]} ({type(exc).__name__} while tokenising)"
    if not counts:
        return fallback
    return (float(min(counts)), float(max(counts))), f"{len(counts)} rows tokenised"


def _sample_table(sources: list, base: Path, planned: dict[str, Estimate]):
    """The first batch of rows of the first readable source (a pending step's: what that step reads)."""
    from workbench.io import open_source

    for spec in sources:
        upstream = _pending(spec, planned)
        if upstream is not None:
            return _sample_table(upstream.sources, base, planned) if upstream.sources else None
        path = _source_path(spec, base)
        if path is None:
            continue
        try:
            return next(open_source(path).iter_tables(), None)
        except InputError:
            continue
    return None


def _usd(tokens: float, price: object) -> float:
    return tokens * float(price) / 1e6 if price is not None else 0.0  # type: ignore[arg-type]


def _source_path(spec: object, base: Path) -> Path | None:
    """A source as a path (from the recipe's folder `base`), or a bundled benchmark's folder (`gsm8k`); None
    when neither exists."""
    if not spec:
        return None
    path = base / str(spec)
    if path.exists():
        return path
    bundled = bundled_data_dir() / str(spec) / "test.jsonl"  # `wb eval --benchmark gsm8k` scores the test split
    return bundled if bundled.exists() else None


def _pending(spec: object, planned: dict[str, Estimate]) -> Estimate | None:
    """The plan of the step whose (not yet finished) run directory `spec` is, if it is one."""
    path = Path(str(spec))
    return next((e for name, e in planned.items() if path.name.startswith(f"{name}-") and e.state != "measured"
                 and not (path / MANIFEST).exists()), None)


def _rows_of(sources: list, r: Resolved, planned: dict[str, Estimate], limit: int | None) -> Range:
    """Rows the sources hold (each capped at `limit`): counted in files, a finished run's manifest, or the
    planned output of the step a source comes from."""
    low = high = 0.0
    for spec in sources:
        count = _count(spec, planned, r.base)
        if count is None:
            continue
        lo, hi = count
        if limit:
            lo, hi = min(lo, limit), min(hi, limit)
        low, high = low + lo, high + hi
    return (low, high)


def _count(spec: object, planned: dict[str, Estimate], base: Path) -> Range | None:
    """(low, high) rows of one source; a pending step's run directory counts as that step's planned output."""
    upstream = _pending(spec, planned)
    if upstream is not None:
        return upstream.rows_out
    path = _source_path(spec, base)
    if path is None:
        return None
    if (path / MANIFEST).exists():
        rows = read_manifest(path).get("rows_out") or 0
        return (rows, rows)
    try:
        from workbench.io import open_source

        rows = sum(t.num_rows for t in open_source(path).iter_tables())
    except InputError:
        return None
    return (rows, rows)


def _prompts_sample(sources: list, field_name: str, system: str | None, base: Path,
                    planned: dict[str, Estimate]) -> list[list[dict]]:
    """Up to SAMPLE prompts of the first readable source (a pending step's: what that step reads), each as
    chat messages; the prompt column is `field_name`, else prompt, question or problem."""
    table = _sample_table(sources, base, planned)
    column = next((c for c in (field_name, "prompt", "question", "problem") if table is not None
                   and c in table.column_names), None)
    if table is None or column is None:
        return []
    out = []
    for value in table.slice(0, SAMPLE).column(column).to_pylist():
        messages = value if isinstance(value, list) else [{"role": "user", "content": str(value)}]
        out.append(([{"role": "system", "content": system}] if system else []) + messages)
    return out


def _prompt_tokens(sources: list, r: Resolved, model: str, planned: dict[str, Estimate]) -> tuple[Range, str]:
    """(low, high) prompt tokens per request, and how they were counted."""
    o = r.options
    sample = _prompts_sample(sources, str(o.get("prompt_field") or "prompt"), o.get("system"),  # type: ignore[arg-type]
                             r.base, planned)
    if not sample:
        return (1.0, 1.0), "no prompts to sample: counted as 1"
    model_dir = _model_dir(model, r.base, planned) if model else None
    if model_dir is not None:
        try:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(model_dir)
            lengths = [len(_ids(tok.apply_chat_template(m, add_generation_prompt=True, tokenize=True))) for m in sample]
            mean = sum(lengths) / len(lengths)
            return (min(lengths) * 1.0, max(mean, max(lengths) * 1.0)), f"{len(sample)} prompts tokenised"
        except Exception as exc:  # a model directory without a usable tokenizer: fall back to characters
            how = f"tokenizer unusable ({type(exc).__name__}); "
    else:
        how = ""
    chars = sum(len(str(msg.get("content", ""))) for m in sample for msg in m) / len(sample)
    return (0.6 * chars / 4, 1.5 * chars / 4), how + f"{len(sample)} prompts at 4 characters a token"


def _model_dir(model: str, base: Path, planned: dict[str, Estimate]) -> Path | None:
    """The local model directory whose tokenizer `model` will have: itself, or for the model a pending
    training step will write, the model that step starts from (followed back through the recipe)."""
    for _ in range(len(planned) + 1):
        path = base / model
        if (path / "config.json").is_file():
            return path
        upstream = _pending(path.parent, planned) or _pending(path, planned)
        if upstream is None or not upstream.model:
            return None
        model = upstream.model
    return None


def _ids(encoded: object) -> list:
    """Token ids from `apply_chat_template`, which returns a list or (newer transformers) a mapping."""
    return encoded["input_ids"] if hasattr(encoded, "keys") else encoded  # type: ignore[index,return-value]


def _earlier_completions(workspace: Path, command: tuple[str, ...], model: str) -> tuple[float | None, int]:
    """(mean completion tokens, samples) over finished units in the ledgers of earlier runs of `command`
    with `model` under `workspace`; (None, 0) when there are none."""
    total = count = 0
    if not workspace.is_dir():
        return None, 0
    for ledger in sorted(workspace.glob(f"*/{LEDGER}")):
        try:
            m = read_manifest(ledger.parent)
        except InputError:
            continue
        config = m.get("config") or {}
        if m.get("stage") != command[0] or model not in (config.get("model"), config.get("strong_model"),
                                                          config.get("weak_model")):
            continue
        try:
            with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
                s, c = db.execute("SELECT SUM(completion_tokens), COUNT(*) FROM units "
                                  "WHERE status IN ('ok', 'truncated')").fetchone()
        except sqlite3.Error:
            continue
        total, count = total + (s or 0), count + (c or 0)
    return (total / count, count) if count else (None, 0)
