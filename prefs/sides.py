"""The models a prefs run samples from ("sides"), each driven by distill_data's generation layer.

A side is one model: its own `EndpointSpec` and sampling, run key, `Ledger` (all sides share the run's
`ledger.sqlite`, told apart by their keys) and `Generator`. `generate_sides` runs every side's pending
units concurrently with distill_data's runner, then verifies them with distill_data's verifiers, so a
re-run resumes generation and verification exactly as `wb distill` does.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

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
from llm.cache import ResponseCache
from llm.options import endpoint_spec, retry_policy, unit_prices
from llm.records import add_verdicts, unit_table
from prefs.config import PrefsConfig
from workbench.errors import InputError


@dataclass
class Side:
    name: str  # strong | weak
    spec: EndpointSpec
    key: str
    ledger: Ledger
    gen: Generator
    progress: Progress


def side_specs(cfg: PrefsConfig) -> list[tuple[str, EndpointSpec]]:
    """(side name, endpoint spec) for the strong model and, when given, the weak one."""
    sides = [("strong", endpoint_spec(cfg, cfg.strong_model, cfg.strong_base_url, cfg.strong_backend, "strong"))]
    if cfg.weak_model:
        sides.append(("weak", endpoint_spec(cfg, cfg.weak_model, cfg.weak_base_url, cfg.weak_backend, "weak")))
    return sides


def sampling(cfg: PrefsConfig) -> SamplingParams:
    return SamplingParams(cfg.temperature, cfg.top_p, cfg.max_tokens, cfg.seed, tuple(cfg.stop))


def open_sides(cfg: PrefsConfig, run_path: Path, prompt_rows: int, cache: ResponseCache | None = None) -> list[Side]:
    """Endpoints, keys and ledgers of every side (answering from `cache` where it holds a sample); raise
    InputError when two sides would share a key."""
    opened: list[tuple[str, EndpointSpec, Generator, str]] = []
    for name, spec in side_specs(cfg):
        gen, template_id = open_generator(spec, sampling(cfg), retry_policy(cfg), cache=cache)
        opened.append((name, spec, gen, run_key(spec, sampling(cfg), template_id)))
    if len({key for *_, key in opened}) < len(opened):
        raise InputError(f"the strong and weak models are both {cfg.strong_model!r} with the same sampling, so "
                         "their samples would be the same units; serve them under different names "
                         "(`wb serve --served-model-name`)")
    # ledgers are opened only once every side checks out, so a refused config leaves no file behind
    return [Side(name, spec, key, Ledger(run_path / LEDGER, key), gen,
                 Progress(prompt_rows * cfg.n, **unit_prices(cfg, spec)))
            for name, spec, gen, key in opened]


async def generate_sides(cfg: PrefsConfig, prompts: pa.Table, sides: list[Side]) -> None:
    """Generate every side's pending units (sides in parallel), then verify what is unverified."""
    await asyncio.gather(*(run_units(prompts, cfg.n, s.ledger, s.gen, s.progress, cfg.progress_seconds)
                           for s in sides))
    for side in sides:  # the sides share one cost cap
        if side.gen.cap is not None:
            side.gen.cap.raise_if_stopped()
    if cfg.verify == "none":
        return
    from llm.verify import VerifyOptions, verify_many
    from llm.verify.judge import open_judge

    judge = open_judge(cfg, sides[0].spec, sides[0].gen) if cfg.verify == "judge" else None
    try:
        await verify_many(VerifyOptions.of(cfg), [(side_units(cfg, prompts, s), s.ledger) for s in sides], judge)
    finally:
        if judge is not None and judge is not sides[0].gen:
            await judge.aclose()


def side_units(cfg: PrefsConfig, prompts: pa.Table, side: Side) -> pa.Table:
    """One row per (prompt, sample) of this side, with the verifier's verdict (null without one)."""
    data = unit_table(prompts, cfg.n, side.ledger.results(), side.spec.model)
    return add_verdicts(data, side.ledger.verdicts(cfg.verify) if cfg.verify != "none" else {})


async def close_generators(sides: list[Side]) -> None:
    for side in sides:
        await side.gen.aclose()
