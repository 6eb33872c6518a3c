"""The models a prefs run samples from ("sides"), each driven by distill_data's generation layer.

A side is one model: its own `DistillConfig`, run key, `Ledger` (all sides share the run's
`ledger.sqlite`, told apart by their keys) and `Generator`. `generate_sides` runs every side's pending
units concurrently with distill_data's runner, then verifies them with distill_data's verifiers, so a
re-run resumes generation and verification exactly as `wb distill` does.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from distill_data.config import DistillConfig
from distill_data.generation import Generator, RetryPolicy
from distill_data.ledger import LEDGER, Ledger
from distill_data.output import add_verdicts, unit_table
from distill_data.pipeline import build_endpoints, run_key, sampling_params
from distill_data.runner import Progress, run_units
from prefs.config import PrefsConfig
from workbench.errors import InputError

_SHARED = [f.name for f in dataclasses.fields(DistillConfig)
           if f.name in {g.name for g in dataclasses.fields(PrefsConfig)} and f.name not in ("prompts", "output")]


@dataclass
class Side:
    name: str  # strong | weak
    cfg: DistillConfig
    key: str
    ledger: Ledger
    gen: Generator
    progress: Progress


def side_configs(cfg: PrefsConfig) -> list[tuple[str, DistillConfig]]:
    """(side name, DistillConfig) for the strong model and, when given, the weak one."""
    judge = {"judge_model": cfg.judge_model or cfg.strong_model,
             "judge_base_url": cfg.judge_base_url or cfg.strong_base_url}
    shared = {name: getattr(cfg, name) for name in _SHARED} | judge
    sides = [("strong", DistillConfig(model=cfg.strong_model, base_url=cfg.strong_base_url,
                                      backend=cfg.strong_backend, **shared))]
    if cfg.weak_model:
        sides.append(("weak", DistillConfig(model=cfg.weak_model, base_url=cfg.weak_base_url,
                                            backend=cfg.weak_backend, **shared)))
    return sides


def open_sides(cfg: PrefsConfig, run_path: Path, prompt_rows: int) -> list[Side]:
    """Endpoints, keys and ledgers of every side; raise InputError when two sides would share a key."""
    policy = RetryPolicy(cfg.max_attempts, cfg.retry_base, cfg.retry_max)
    opened = []
    for name, dcfg in side_configs(cfg):
        endpoints, template_id = build_endpoints(dcfg, dcfg.model, dcfg.base_url)
        key = run_key(dcfg, template_id)
        if any(k == key for _, _, k, _ in opened):
            raise InputError(f"the strong and weak models are both {dcfg.model!r} with the same sampling, so their "
                             "samples would be the same units; serve them under different names "
                             "(`wb serve --served-model-name`)")
        opened.append((name, dcfg, key, endpoints))
    return [Side(name, dcfg, key, Ledger(run_path / LEDGER, key), Generator(endpoints, sampling_params(dcfg), policy),
                 Progress(prompt_rows * cfg.n, price_in=cfg.price_in, price_out=cfg.price_out))
            for name, dcfg, key, endpoints in opened]


async def generate_sides(cfg: PrefsConfig, prompts: pa.Table, sides: list[Side]) -> None:
    """Generate every side's pending units (sides in parallel), then verify what is unverified."""
    await asyncio.gather(*(run_units(prompts, cfg.n, s.ledger, s.gen, s.progress, cfg.progress_seconds)
                           for s in sides))
    if cfg.verify == "none":
        return
    from distill_data.verify import verify_many

    # The judge is the strong model's kind of endpoint, whichever side is being checked.
    vcfg = dataclasses.replace(sides[0].cfg, backend=cfg.strong_backend)
    await verify_many(vcfg, [(side_units(cfg, prompts, s), s.ledger) for s in sides], sides[0].gen)


def side_units(cfg: PrefsConfig, prompts: pa.Table, side: Side) -> pa.Table:
    """One row per (prompt, sample) of this side, with the verifier's verdict (null without one)."""
    data = unit_table(prompts, cfg.n, side.ledger.results(), side.cfg.model)
    return add_verdicts(data, side.ledger.verdicts(cfg.verify) if cfg.verify != "none" else {})


async def close_generators(sides: list[Side]) -> None:
    for side in sides:
        await side.gen.aclose()
