"""`distill(config)`: prompts -> ledgered generation -> verification -> data.parquet, sft.parquet, manifest.

The run key hashes the model, the backend kind, the sampling parameters and the chat template (for
in-process backends); each prompt's rendered messages are hashed per unit. Endpoints, concurrency and
retry knobs are not in the key, so changing them resumes the same units.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path

import pyarrow.compute as pc

from distill_data.backends.base import SamplingParams
from distill_data.config import DistillConfig
from distill_data.generation import Endpoint, Generator, RetryPolicy
from distill_data.ledger import LEDGER, Ledger
from distill_data.output import add_verdicts, sft_table, unit_table
from distill_data.prompts import QuestionHook, load_prompts
from distill_data.questions import question_curation
from distill_data.runner import Progress, run_units
from workbench.errors import InputError
from workbench.io import write_table
from workbench.rundir import RunDir, Usage


def sampling_params(cfg: DistillConfig) -> SamplingParams:
    return SamplingParams(cfg.temperature, cfg.top_p, cfg.max_tokens, cfg.seed, tuple(cfg.stop))


def build_endpoints(cfg: DistillConfig, model: str, base_urls: list[str]) -> tuple[list[Endpoint], str]:
    """The endpoints for `cfg.backend` and a template id for the run key."""
    if cfg.backend == "openai":
        if not base_urls:
            raise InputError("--backend openai needs at least one --base-url (e.g. http://localhost:8000/v1)")
        from distill_data.backends.openai_http import OpenAIBackend

        key = os.environ.get(cfg.api_key_env)
        backends = [OpenAIBackend(u, model, key, cfg.timeout, max(100, cfg.max_concurrency)) for u in base_urls]
        return [Endpoint(b, cfg.max_concurrency) for b in backends], "server-side"
    if cfg.backend == "hf":
        from distill_data.backends.hf_local import HFBackend

        backend = HFBackend(model, max_batch=cfg.max_concurrency)
    else:
        from distill_data.backends.vllm_local import VLLMBackend

        backend = VLLMBackend(model, max_batch=cfg.max_concurrency)
    return [Endpoint(backend, cfg.max_concurrency)], backend.template_id


def run_key(cfg: DistillConfig, template_id: str) -> str:
    parts = {"model": cfg.model, "backend": "local" if cfg.backend != "openai" else "http",
             "sampling": sampling_params(cfg).key(), "template": template_id}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def distill(cfg: DistillConfig, question_hook: QuestionHook | None = None) -> dict:
    """Run (or resume) a distillation into `cfg.output`; return the manifest."""
    if not cfg.output:
        raise InputError("--output is required (a run directory)")
    if not cfg.model:
        raise InputError("--model is required")
    if cfg.n < 1:
        raise InputError(f"--n must be at least 1, got {cfg.n}")
    if cfg.verify == "math" and not cfg.answer_field:
        raise InputError("--verify math needs --answer-field (the column with the reference answer)")
    if cfg.verify == "code" and not cfg.tests_field:
        raise InputError("--verify code needs --tests-field (the column with the Python tests)")
    question_hook = question_hook or question_curation(cfg.decontam, cfg.dedup_prompts, cfg.decontam_ngram)
    prompts, dropped, source = load_prompts(cfg.prompts, cfg.prompt_field, cfg.answer_field, cfg.tests_field,
                                            cfg.system, cfg.limit, question_hook)
    with RunDir(cfg.output, "distill", cfg, inputs=[source], resumable=True) as run:
        endpoints, template_id = build_endpoints(cfg, cfg.model, cfg.base_url)
        key = run_key(cfg, template_id)
        ledger = Ledger(Path(run.path) / LEDGER, key)
        policy = RetryPolicy(cfg.max_attempts, cfg.retry_base, cfg.retry_max)
        gen = Generator(endpoints, sampling_params(cfg), policy)
        progress = Progress(prompts.num_rows * cfg.n, price_in=cfg.price_in, price_out=cfg.price_out)
        try:
            asyncio.run(_generate_and_verify(cfg, prompts, ledger, gen, progress))
            data = add_verdicts(unit_table(prompts, cfg.n, ledger.results(), cfg.model),
                                ledger.verdicts(cfg.verify) if cfg.verify != "none" else {})
            requests, prefill, sampled = ledger.usage()
        finally:
            ledger.close()
        return _finish(cfg, run, data, prompts.num_rows + sum(dropped.values()), dropped, requests, prefill, sampled, progress, key, gen)


async def _generate_and_verify(cfg: DistillConfig, prompts, ledger: Ledger, gen: Generator,
                               progress: Progress) -> None:
    try:
        await run_units(prompts, cfg.n, ledger, gen, progress, cfg.progress_seconds)
        if cfg.verify != "none":
            from distill_data.verify import verify_units

            data = unit_table(prompts, cfg.n, ledger.results(), cfg.model)
            await verify_units(cfg, data, ledger, gen)
    finally:
        await gen.aclose()


def _finish(cfg: DistillConfig, run: RunDir, data, prompts_in: int, dropped: dict[str, int], requests: int,
            prefill: int, sampled: int, progress: Progress, key: str, gen: Generator) -> dict:
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
    return run.finish(rows_in=prompts_in, rows_out=data.num_rows, dropped=dropped, usage=usage, run_key=key,
                      units=units, status_counts=counts, verified_counts=verdicts, sft_rows=sft.num_rows,
                      faults={"retries": gen.stats.retries, "rate_limited": gen.stats.rate_limited,
                              "errors": gen.stats.errors})
