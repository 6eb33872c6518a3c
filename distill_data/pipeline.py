"""`distill(config)`: prompts -> ledgered generation -> verification -> data.parquet, sft.parquet, manifest.

The run key hashes the model, the backend kind, the sampling parameters and the chat template (for
in-process backends); each prompt's rendered messages are hashed per unit. Endpoints, concurrency and
retry knobs are not in the key, so changing them resumes the same units.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyarrow.compute as pc

from distill_data.config import DistillConfig
from distill_data.generation import (
    LEDGER,
    EndpointSpec,
    Generator,
    Ledger,
    Progress,
    RetryPolicy,
    SamplingParams,
    expand_base_urls,
    open_generator,
    run_key,
    run_units,
)
from distill_data.output import add_verdicts, sft_table, unit_table
from distill_data.prompts import QuestionHook, load_prompts
from distill_data.questions import question_curation
from workbench.config import validate
from workbench.errors import InputError
from workbench.io import write_table
from workbench.rundir import RunDir, RunResult, Usage


def sampling_params(cfg: DistillConfig) -> SamplingParams:
    return SamplingParams(cfg.temperature, cfg.top_p, cfg.max_tokens, cfg.seed, tuple(cfg.stop))


def endpoint_spec(cfg, model: str, base_urls: list[str], backend: str | None = None) -> EndpointSpec:
    """The `EndpointSpec` of one model of a job built on `JobOptions` (distill, prefs)."""
    return EndpointSpec(model=model, base_urls=expand_base_urls(base_urls), backend=backend or cfg.backend,
                        api_key_env=cfg.api_key_env, timeout=cfg.timeout, max_concurrency=cfg.max_concurrency,
                        min_concurrency=cfg.min_concurrency, rpm=cfg.rpm, tpm=cfg.tpm)


def retry_policy(cfg) -> RetryPolicy:
    return RetryPolicy(cfg.max_attempts, cfg.retry_base, cfg.retry_max)


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
        from distill_data.verify.code import check_sandbox

        check_sandbox(cfg.sandbox)
    question_hook = question_hook or question_curation(cfg.decontam, cfg.dedup_prompts, cfg.decontam_ngram)
    prompts, dropped, source = load_prompts(cfg.prompts, cfg.prompt_field, cfg.answer_field, cfg.tests_field,
                                            cfg.system, cfg.limit, question_hook)
    if cfg.shard:
        from distill_data.shards import select_shard

        prompts = select_shard(prompts, cfg.shard)
    with RunDir(cfg.output, "distill", cfg, inputs=[source], resumable=True) as run:
        spec = endpoint_spec(cfg, cfg.model, cfg.base_url)
        gen, template_id = open_generator(spec, sampling_params(cfg), retry_policy(cfg))
        key = run_key(spec, sampling_params(cfg), template_id)
        ledger = Ledger(Path(run.path) / LEDGER, key)
        progress = Progress(prompts.num_rows * cfg.n, price_in=cfg.price_in, price_out=cfg.price_out)
        watch_units(run, [(progress, gen, ledger.usage())])
        try:
            asyncio.run(_generate_and_verify(cfg, prompts, ledger, gen, progress))
            data = add_verdicts(unit_table(prompts, cfg.n, ledger.results(), cfg.model),
                                ledger.verdicts(cfg.verify) if cfg.verify != "none" else {})
            requests, prefill, sampled = ledger.usage()
        finally:
            ledger.close()
        return _finish(cfg, run, data, prompts.num_rows + sum(dropped.values()), dropped, requests, prefill, sampled,
                       progress, key, gen)


async def _generate_and_verify(cfg: DistillConfig, prompts, ledger: Ledger, gen: Generator,
                               progress: Progress) -> None:
    try:
        await run_units(prompts, cfg.n, ledger, gen, progress, cfg.progress_seconds)
        if cfg.verify != "none":
            from distill_data.verify import VerifyOptions, verify_units

            data = unit_table(prompts, cfg.n, ledger.results(), cfg.model)
            judge = open_judge(cfg, gen) if cfg.verify == "judge" else None
            try:
                await verify_units(VerifyOptions.of(cfg), data, ledger, judge)
            finally:
                if judge is not None and judge is not gen:
                    await judge.aclose()
    finally:
        await gen.aclose()


def watch_units(run: RunDir, parts: list[tuple[Progress, Generator, tuple[int, int, int]]]):
    """Give every part a `Progress.watch` that keeps the run's progress.json current over all parts, each a
    (progress, generator, usage committed before this process): one for distill, one per prefs model."""

    def watch(_progress: Progress, _gen: Generator) -> None:
        used = [(b[0] + g.stats.requests, b[1] + g.stats.prefill_tokens, b[2] + g.stats.sampled_tokens)
                for _, g, b in parts]
        prefill, sampled = sum(u[1] for u in used), sum(u[2] for u in used)
        progress = [p for p, _, _ in parts]
        run.progress.update(done=sum(p.done_before + p.done + p.failed for p in progress),
                            total=sum(p.total for p in progress), unit="units", phase="generation",
                            usage={"requests": sum(u[0] for u in used), "prefill_tokens": prefill,
                                   "sampled_tokens": sampled, "cost_usd": progress[0].cost(prefill, sampled)},
                            failed=sum(p.failed for p in progress), truncated=sum(p.truncated for p in progress),
                            in_flight=sum(g.inflight for _, g, _ in parts))

    for p, _, _ in parts:
        p.watch = watch


def open_judge(cfg, gen: Generator, backend: str | None = None) -> Generator:
    """The judge's generator: `gen` itself unless `--judge-model` / `--judge-base-url` name another model.
    Its tokens are counted in the run's ledger by `verify_units`."""
    from distill_data.verify.judge import judge_generator

    if not (cfg.judge_model or cfg.judge_base_url):
        return gen
    spec = endpoint_spec(cfg, cfg.judge_model or cfg.model, cfg.judge_base_url or cfg.base_url, backend)
    return judge_generator(spec, gen.policy)


def _finish(cfg: DistillConfig, run: RunDir, data, prompts_in: int, dropped: dict[str, int], requests: int,
            prefill: int, sampled: int, progress: Progress, key: str, gen: Generator) -> RunResult:
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
    write_table(sft, Path(run.path) / "sft.parquet")
    usage = Usage(requests=requests, prefill_tokens=prefill, sampled_tokens=sampled,
                  cost_usd=progress.cost(prefill, sampled))
    shard = None
    if cfg.shard:  # what `merge_shards` checks; dropped counts are of the whole prompt set on every shard
        from distill_data.shards import parse_shard

        index, count = parse_shard(cfg.shard)
        shard = {"index": index, "count": count, "prompts": units // cfg.n}
    return run.finish(rows_in=prompts_in, rows_out=data.num_rows, dropped=dropped, usage=usage, run_key=key, shard=shard,
                      units=units, status_counts=counts, verified_counts=verdicts, sft_rows=sft.num_rows,
                      faults={"retries": gen.stats.retries, "rate_limited": gen.stats.rate_limited,
                              "errors": gen.stats.errors, "endpoints": [e.state() for e in gen.endpoints],
                              "budget_wait_s": round(gen.budget.waited, 3)})
