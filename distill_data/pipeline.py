"""`distill(config)`: prompts -> ledgered generation -> verification -> data.parquet, sft.parquet, manifest.

The run key hashes the model, the backend kind, the sampling parameters and the chat template (for
in-process backends); each prompt's rendered messages are hashed per unit. Endpoints, concurrency and
retry knobs are not in the key, so changing them resumes the same units.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyarrow.compute as pc

from curate import question_curation
from distill_data.config import DistillConfig
from llm import (
    LEDGER,
    EndpointSpec,
    Generator,
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
from llm.prompts import QuestionHook, load_prompts
from llm.records import add_verdicts, sft_table, unit_table
from llm.runner import check_some_succeeded, watch_units
from llm.runtime import spec_loads
from llm.verify.judge import judge_spec, open_judge
from workbench.config import validate
from workbench.errors import InputError
from workbench.io import write_table
from workbench.rundir import RunDir, RunResult, Usage
from workbench.runfiles import SFT


def sampling_params(cfg: DistillConfig) -> SamplingParams:
    return SamplingParams(cfg.temperature, cfg.top_p, cfg.max_tokens, cfg.seed, tuple(cfg.stop))


def distill(cfg: DistillConfig, question_hook: QuestionHook | None = None) -> RunResult:
    """Run (or resume) a distillation into `cfg.output`; return its `RunResult` (the manifest with the run's
    path and products). Bad options or input raise `InputError`."""
    validate(cfg)
    if not cfg.output:
        raise InputError("--output is required (a run directory)")
    if not cfg.model:
        raise InputError("--model is required")
    if cfg.n < 1:
        raise InputError(f"--n must be at least 1, got {cfg.n}")
    if cfg.shard:
        from distill_data.shards import parse_shard

        parse_shard(cfg.shard)
    if cfg.verify in ("math", "exact") and not cfg.answer_field:
        raise InputError(f"--verify {cfg.verify} needs --answer-field (the column with the reference answer)")
    if cfg.verify == "code" and not cfg.tests_field:
        raise InputError("--verify code needs --tests-field (the column with the Python tests)")
    if cfg.verify == "code":
        from llm.verify.code import check_sandbox

        check_sandbox(cfg.sandbox)
    spec = endpoint_spec(cfg, cfg.model, cfg.base_url, cfg.backend)
    check_max_cost(cfg, cfg.max_cost)
    if cfg.verify == "judge":
        judge_spec(cfg, spec)  # a bad judge option fails before any generation
    question_hook = question_hook or question_curation(cfg.decontam, cfg.dedup_prompts, cfg.decontam_ngram)
    prompts, dropped, source = load_prompts(cfg.prompts, cfg.prompt_field, cfg.answer_field, cfg.tests_field,
                                            cfg.system, cfg.limit, question_hook)
    if cfg.shard:
        from distill_data.shards import select_shard

        prompts = select_shard(prompts, cfg.shard)
    with RunDir(cfg.output, "distill", cfg, inputs=[source], resumable=True) as run:
        cache = open_cache(cfg.cache)
        gen, template_id = open_generator(spec, sampling_params(cfg), retry_policy(cfg), cache=cache)
        key = run_key(spec, sampling_params(cfg), template_id)
        ledger = Ledger(Path(run.path) / LEDGER, key)
        gen.cap = cost_cap(cfg, cfg.max_cost, ledger.usage(), spec)
        progress = Progress(prompts.num_rows * cfg.n, **unit_prices(cfg, spec))
        watch_units(run, [(progress, gen, ledger.usage())], cached=ledger.usage_by_billing()["cached"])
        try:
            asyncio.run(_generate_and_verify(cfg, spec, prompts, ledger, gen, progress))
            check_some_succeeded(unit_table(prompts, cfg.n, ledger.results(), cfg.model))
            data = add_verdicts(unit_table(prompts, cfg.n, ledger.results(), cfg.model),
                                ledger.verdicts(cfg.verify) if cfg.verify != "none" else {})
            usage = run_usage([ledger], cfg.price_in, cfg.price_out, batch_prices=batch_prices(cfg))
        finally:
            ledger.close()
            if cache is not None:
                cache.close()
        return _finish(cfg, run, data, prompts.num_rows + sum(dropped.values()), dropped, usage, key, gen, spec)


async def _generate_and_verify(cfg: DistillConfig, spec: EndpointSpec, prompts, ledger: Ledger, gen: Generator,
                               progress: Progress) -> None:
    try:
        await run_units(prompts, cfg.n, ledger, gen, progress, cfg.progress_seconds)
        gen.cap.raise_if_stopped()
        if cfg.verify != "none":
            from llm.verify import VerifyOptions, verify_units

            data = unit_table(prompts, cfg.n, ledger.results(), cfg.model)
            judge = open_judge(cfg, spec, gen) if cfg.verify == "judge" else None
            try:
                await verify_units(VerifyOptions.of(cfg), data, ledger, judge)
            finally:
                if judge is not None and judge is not gen:
                    await judge.aclose()
            gen.cap.raise_if_stopped()  # a judge stopped at the cap: its missing verdicts are asked on a re-run
    finally:
        await gen.aclose()


def _finish(cfg: DistillConfig, run: RunDir, data, prompts_in: int, dropped: dict[str, int], usage: Usage,
            key: str, gen: Generator, spec: EndpointSpec) -> RunResult:
    counts = {s: int(pc.sum(pc.equal(data.column("status"), s)).as_py() or 0) for s in ("ok", "truncated", "failed")}
    verified = data.column("verified")
    verdicts = {"true": int(pc.sum(pc.equal(verified, True)).as_py() or 0),
                "false": int(pc.sum(pc.equal(verified, False)).as_py() or 0), "null": verified.null_count}
    units = data.num_rows
    if cfg.only_verified:
        data = data.filter(pc.fill_null(verified, False))
        dropped = {**dropped, "not_verified": units - data.num_rows}
    write_table(data, run.product)
    sft = sft_table(data, cfg.think_format)
    write_table(sft, Path(run.path) / SFT)
    shard = None
    if cfg.shard:  # what `merge_shards` checks; dropped counts are of the whole prompt set on every shard
        from distill_data.shards import parse_shard

        index, count = parse_shard(cfg.shard)
        shard = {"index": index, "count": count, "prompts": units // cfg.n}
    return run.finish(rows_in=prompts_in, rows_out=data.num_rows, dropped=dropped, usage=usage, run_key=key, backend=spec.backend, shard=shard,
                      runtime=spec_loads(spec),
                      units=units, status_counts=counts, verified_counts=verdicts, sft_rows=sft.num_rows,
                      faults={"retries": gen.stats.retries, "rate_limited": gen.stats.rate_limited,
                              "errors": gen.stats.errors, "endpoints": [e.state() for e in gen.endpoints],
                              "budget_wait_s": round(gen.budget.waited, 3)})
