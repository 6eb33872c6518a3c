"""`evaluate(config)`: benchmarks -> ledgered generation -> verification -> per-item data.parquet + metrics.

Every benchmark's items become units `(benchmark/item id, sample index)` in one durable ledger, so a killed
evaluation resumes by re-running the same command and a finished one is not generated again; usage and
faults are the generation layer's. The manifest's `metrics` holds, per benchmark, accuracy, pass@1,
pass@k and maj@k (k = --n), a 95% interval, mean response tokens and the truncation rate
(`evals.metrics`). Units that failed at the endpoint are reported and retried by a re-run;
until then they count as wrong. `--verify judge` asks `--judge-model` through distill's judge verifier
(`llm.verify.judge`): its verdicts are recorded per sample in the ledger under the judge's name,
so a re-run asks only what is unjudged (or failed at the judge), and its tokens join the run's usage.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from evals.benchmarks import Benchmark, extracted_answer, resolve_benchmarks
from evals.config import EvalConfig
from evals.metrics import benchmark_metrics
from llm import (
    LEDGER,
    EndpointSpec,
    Ledger,
    Progress,
    SamplingParams,
    open_generator,
    run_key,
    run_units,
)
from llm.cache import open_cache
from llm.ledger import run_usage
from llm.options import batch_prices, check_max_cost, cost_cap, endpoint_spec, retry_policy, unit_prices
from llm.prompts import load_prompts
from llm.records import add_verdicts, unit_table
from llm.runtime import spec_loads
from llm.verify.judge import judge_spec
from workbench.config import validate
from workbench.errors import InputError
from workbench.io import write_table
from workbench.rundir import RunDir, RunResult


def load_benchmarks(cfg: EvalConfig, benchmarks: list[Benchmark]) -> tuple[pa.Table, list, list[str]]:
    """(all items with ids `benchmark/id`, their sources, the benchmark of each row)."""
    tables, sources, names = [], [], []
    for b in benchmarks:
        table, _, source = load_prompts(b.source, b.prompt_field, b.answer_field, None, cfg.system, cfg.limit)
        if table.num_rows == 0:
            raise InputError(f"--benchmark {b.name}: {b.source} holds no items")
        if table.column("answer").null_count:
            row = table.column("answer").to_pylist().index(None)
            raise InputError(f"--benchmark {b.name}: item {row + 1} has no reference answer in "
                             f"{b.answer_field!r}")
        ids = pc.binary_join_element_wise(pa.array([b.name] * table.num_rows), table.column("prompt_id"), "/")
        tables.append(table.set_column(0, "prompt_id", ids))
        sources.append(source)
        names += [b.name] * table.num_rows
    return pa.concat_tables(tables), sources, names


def verifier_names(cfg: EvalConfig, benchmarks: list[Benchmark]) -> dict[str, str]:
    """Each verifier kind in use -> its name in the ledger (the judge's carries its model, so another judge
    grades afresh instead of reusing these verdicts)."""
    return {b.verifier: f"judge:{cfg.judge_model}" if b.verifier == "judge" else b.verifier for b in benchmarks}


def evaluate(cfg: EvalConfig) -> RunResult:
    """Run (or resume) an evaluation into `cfg.output`; return its `RunResult` (the manifest, whose `metrics`
    hold each benchmark's numbers, with the run's path). Bad options or input raise `InputError`."""
    from llm.runner import check_some_succeeded, watch_units

    validate(cfg)
    if not cfg.output:
        raise InputError("--output is required (a run directory)")
    if not cfg.model:
        raise InputError("--model is required")
    benchmarks = resolve_benchmarks(cfg.benchmark, cfg.prompt_field, cfg.answer_field, cfg.verify)
    judged = any(b.verifier == "judge" for b in benchmarks)
    if cfg.verify == "judge" and not judged:
        raise InputError("--verify judge grades benchmark files; the bundled benchmarks are always checked with "
                         "the math verifier")
    if judged and not cfg.judge_model:
        raise InputError("--verify judge needs --judge-model (the model that grades each response; the model under "
                         "evaluation does not grade itself)")
    spec = endpoint_spec(cfg, cfg.model, cfg.base_url, cfg.backend)
    check_max_cost(cfg, cfg.max_cost)
    judge = judge_spec(cfg, spec) if judged else None  # its endpoints and backend default to the model's
    prompts, sources, names = load_benchmarks(cfg, benchmarks)
    sampling = SamplingParams(cfg.temperature, cfg.top_p, cfg.max_tokens, cfg.seed)
    with RunDir(cfg.output, "eval", cfg, inputs=sources, resumable=True) as run:
        cache = open_cache(cfg.cache)
        gen, template_id = open_generator(spec, sampling, retry_policy(cfg), seed=cfg.seed or 0, cache=cache)
        key = run_key(spec, sampling, template_id)
        ledger = Ledger(Path(run.path) / LEDGER, key)
        gen.cap = cost_cap(cfg, cfg.max_cost, ledger.usage(), spec)
        progress = Progress(prompts.num_rows * cfg.n, **unit_prices(cfg, spec))
        watch_units(run, [(progress, gen, ledger.usage())], cached=ledger.usage_by_billing()["cached"])
        try:
            asyncio.run(_generate_and_verify(cfg, benchmarks, prompts, ledger, gen, progress, judge))
            check_some_succeeded(unit_table(prompts, cfg.n, ledger.results(), cfg.model), "sample")
            verdicts: dict = {}
            for name in verifier_names(cfg, benchmarks).values():
                verdicts.update(ledger.verdicts(name))
            data = add_verdicts(unit_table(prompts, cfg.n, ledger.results(), cfg.model), verdicts)
            usage = run_usage([ledger], cfg.price_in, cfg.price_out, batch_prices=batch_prices(cfg))
        finally:
            ledger.close()
            if cache is not None:
                cache.close()
        data = item_table(data, names, cfg.n, {b.name: b.verifier for b in benchmarks})
        write_table(data, run.product)
        metrics = {b.name: benchmark_metrics_of(data, b.name, cfg.n, cfg.bootstrap_seed) for b in benchmarks}
        counts = {s: int(pc.sum(pc.equal(data.column("status"), s)).as_py() or 0) for s in ("ok", "truncated", "failed")}
        return run.finish(rows_in=prompts.num_rows, rows_out=data.num_rows, usage=usage, run_key=key,
                          metrics=metrics, status_counts=counts, model=cfg.model, runtime=spec_loads(spec),
                          backend=spec.backend,
                          benchmarks={b.name: {"source": b.source, "verifier": b.verifier,
                                               **({"judge": cfg.judge_model} if b.verifier == "judge" else {})}
                                      for b in benchmarks},
                          faults={"retries": gen.stats.retries, "rate_limited": gen.stats.rate_limited,
                                  "errors": gen.stats.errors})


async def _generate_and_verify(cfg: EvalConfig, benchmarks: list[Benchmark], prompts: pa.Table, ledger: Ledger,
                               gen, progress: Progress, judge_endpoint: EndpointSpec | None) -> None:
    from llm.verify import VerifyOptions, verify_units
    from llm.verify.judge import judge_generator

    try:
        await run_units(prompts, cfg.n, ledger, gen, progress, cfg.progress_seconds)
    finally:
        await gen.aclose()
    gen.cap.raise_if_stopped()
    data = unit_table(prompts, cfg.n, ledger.results(), cfg.model)
    owner = pa.array([p.split("/", 1)[0] for p in data.column("prompt_id").to_pylist()])
    for kind, name in sorted(verifier_names(cfg, benchmarks).items()):
        mine = pa.array([b.name for b in benchmarks if b.verifier == kind])
        part = data.filter(pc.is_in(owner, value_set=mine))
        judge = judge_generator(judge_endpoint, gen.policy, gen) if kind == "judge" and judge_endpoint else None
        try:
            await verify_units(VerifyOptions(kind, cfg.verify_workers, record_as=name), part, ledger, judge)
        finally:
            if judge is not None:
                await judge.aclose()
    gen.cap.raise_if_stopped()  # a judge stopped at the cap: its missing verdicts are asked on a re-run


def item_table(data: pa.Table, names: list[str], n: int, verifiers: dict[str, str]) -> pa.Table:
    """The per-sample rows of data.parquet: the unit table with the benchmark, the item's own id, the
    answer maj@k votes on, and a boolean `correct` (a missing verdict is wrong)."""
    import numpy as np

    bench = pa.array(np.repeat(np.array(names, dtype=object), n), pa.string())
    item = pa.array([p.split("/", 1)[1] for p in data.column("prompt_id").to_pylist()], pa.string())
    answers = [extracted_answer(c, verifiers[b]) if s == "ok" else None
               for c, b, s in zip(data.column("content").to_pylist(), bench.to_pylist(),
                                  data.column("status").to_pylist(), strict=True)]
    data = data.drop_columns(["tests"])
    data = data.add_column(0, "benchmark", bench).add_column(2, "item_id", item)
    data = data.append_column("extracted_answer", pa.array(answers, pa.string()))
    return data.append_column("correct", pc.fill_null(data.column("verified"), False))


def benchmark_metrics_of(data: pa.Table, name: str, n: int, seed: int = 0) -> dict:
    """`benchmark_metrics` of one benchmark's rows of the per-sample table (rows come n per item, in order)."""
    rows = data.filter(pc.equal(data.column("benchmark"), name))

    def per_item(column: str) -> list[list]:
        values = rows.column(column).to_pylist()
        return [values[i:i + n] for i in range(0, len(values), n)]

    truncated = [[s == "truncated" for s in item] for item in per_item("status")]
    out = benchmark_metrics(per_item("correct"), per_item("extracted_answer"), per_item("completion_tokens"),
                            truncated, k=n, seed=seed)
    out["failed"] = int(pc.sum(pc.equal(rows.column("status"), "failed")).as_py() or 0)
    # answered samples the verifier gave no verdict (a judge that failed or gave no verdict line): wrong
    answered = rows.filter(pc.equal(rows.column("status"), "ok"))
    out["unverified"] = answered.column("verified").null_count
    return out
