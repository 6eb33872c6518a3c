"""`make_pairs(config)`: prompts -> each model's ledgered samples -> verdicts and scores -> pairs -> run dir.

Generation, the ledger, endpoints, retries and verification are distill_data's; this module picks the
scorer, applies the strategy and writes `data.parquet`, `removed.parquet` and the manifest.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyarrow as pa

from curate import question_curation
from llm.cache import open_cache
from llm.generator import Generator
from llm.ledger import run_usage
from llm.options import batch_prices, check_max_cost, cost_cap
from llm.prompts import load_prompts
from llm.reasoning import render_reasoning
from llm.runner import check_some_succeeded, watch_units
from llm.runtime import spec_loads
from llm.verify import judge_usage
from prefs.config import PrefsConfig
from prefs.output import pair_stats, pair_table, sft_rows, split_kept
from prefs.pairing import Pairs, SampleView, apply_verdicts, best_of_k, best_vs_worst_pairs, delta_pairs
from prefs.scoring import RewardModel, add_scores, record_missing_scores, scorer_id
from prefs.sides import Side, close_generators, generate_sides, open_sides, side_specs, side_units
from workbench.config import validate
from workbench.errors import InputError
from workbench.io import write_table
from workbench.rundir import RunDir, RunResult, Usage
from workbench.runfiles import REMOVED


def resolve_scorer(cfg: PrefsConfig) -> str:
    """The scorer in use: `none`, `verifier`, `judge` or `reward-model`; raise InputError if it cannot work."""
    kind = cfg.score
    if kind == "auto":
        kind = "verifier" if cfg.verify != "none" else "none"
    if kind == "none" and cfg.strategy != "delta":
        raise InputError(f"--strategy {cfg.strategy} ranks samples, so it needs --verify math|code|judge or "
                         "--score judge|reward-model")
    if kind == "verifier" and cfg.verify == "none":
        raise InputError("--score verifier needs --verify math|code|judge")
    if kind == "reward-model" and not cfg.reward_model:
        raise InputError("--score reward-model needs --reward-model PATH (a sequence-classification checkpoint)")
    return kind


def check_config(cfg: PrefsConfig) -> None:
    if not cfg.output:
        raise InputError("--output is required (a run directory)")
    if not cfg.strong_model:
        raise InputError("--strong-model is required")
    check_max_cost(cfg, cfg.max_cost)
    if cfg.strategy == "delta" and not cfg.weak_model:
        raise InputError("--strategy delta needs --weak-model (the rejected side)")
    if cfg.n < 1:
        raise InputError(f"--n must be at least 1, got {cfg.n}")
    if cfg.strategy == "best-vs-worst" and cfg.n < 2 and not cfg.weak_model:
        raise InputError("--strategy best-vs-worst with one model needs --n 2 or more samples per prompt")
    if cfg.verify == "math" and not cfg.answer_field:
        raise InputError("--verify math needs --answer-field (the column with the reference answer)")
    if cfg.verify == "code" and not cfg.tests_field:
        raise InputError("--verify code needs --tests-field (the column with the Python tests)")
    if cfg.verify == "code":
        from llm.verify.code import check_sandbox

        check_sandbox(cfg.sandbox)
    strong = side_specs(cfg)[0][1]  # bad endpoint options fail before any prompt is read
    if "judge" in (cfg.verify, cfg.score):
        from llm.verify.judge import judge_spec

        judge_spec(cfg, strong)


def make_pairs(cfg: PrefsConfig) -> RunResult:
    """Run (or resume) a prefs job into `cfg.output` (pairs, or rejection-sampled SFT rows); return its
    `RunResult`. Bad options or input raise `InputError`."""
    validate(cfg)
    check_config(cfg)
    kind = resolve_scorer(cfg)
    prompts, dropped, source = load_prompts(cfg.prompts, cfg.prompt_field, cfg.answer_field, cfg.tests_field,
                                            cfg.system, cfg.limit,
                                            question_curation(cfg.decontam, cfg.dedup_prompts, cfg.decontam_ngram))
    reward = RewardModel(cfg.reward_model, cfg.reward_batch_size) if kind == "reward-model" else None
    with RunDir(cfg.output, "prefs", cfg, inputs=[source], resumable=True) as run:
        cache = open_cache(cfg.cache)
        sides = open_sides(cfg, Path(run.path), prompts.num_rows, cache)
        paid = [s.ledger.usage() for s in sides]
        cap = cost_cap(cfg, cfg.max_cost, tuple(sum(u[j] for u in paid) for j in range(3)))
        for side in sides:
            side.gen.cap = cap
        cached = [s.ledger.usage_by_billing()["cached"] for s in sides]
        watch_units(run, [(s.progress, s.gen, u) for s, u in zip(sides, paid, strict=True)],
                    cached=tuple(sum(u[j] for u in cached) for j in range(3)))
        try:
            samples = asyncio.run(_sample_and_score(cfg, kind, prompts, sides, reward))
            usage = [s.ledger.usage() for s in sides]
            total = run_usage([s.ledger for s in sides], cfg.price_in, cfg.price_out, batch_prices=batch_prices(cfg))
        finally:
            for side in sides:
                side.ledger.close()
            if cache is not None:
                cache.close()
        return _write(cfg, kind, run, prompts, samples, sides, usage, dropped, total)


async def _sample_and_score(cfg: PrefsConfig, kind: str, prompts: pa.Table, sides: list[Side],
                            reward: RewardModel | None) -> pa.Table:
    """Every side's units stacked (strong block first) with `verified` and `score` columns."""
    judge: Generator | None = None
    try:
        await generate_sides(cfg, prompts, sides)
        name = scorer_id(kind, cfg.judge_model or cfg.strong_model, cfg.reward_model) \
            if kind in ("judge", "reward-model") \
            else None
        if kind == "judge":
            from llm.verify.judge import judge_generator, judge_spec

            # a generator of its own even for the strong model: its stats are added to the run's usage whole
            judge = judge_generator(judge_spec(cfg, sides[0].spec), sides[0].gen.policy, sides[0].gen)
        tables = []
        for side in sides:
            units = side_units(cfg, prompts, side)
            check_some_succeeded(units, f"{side.name}-model unit")  # no pair can come of a side with no answer
            if name is not None:
                await record_missing_scores(kind, name, units, side.ledger, judge, reward)
            tables.append(add_scores(units, kind, side.ledger, name))
        if judge is not None:  # judge tokens are the run's usage too
            used = judge_usage(judge)
            sides[0].ledger.add_usage(*used[:3])
            sides[0].ledger.add_usage(*used[3:], "cached")
            sides[0].ledger.flush()
        sides[0].gen.cap.raise_if_stopped()  # a judge stopped at the cap: a re-run asks its missing scores
        return pa.concat_tables(tables)
    finally:
        if judge is not None:
            await judge.aclose()
        await close_generators(sides)


def pair_samples(cfg: PrefsConfig, kind: str, view: SampleView, rows: int) -> Pairs:
    if cfg.strategy == "delta":
        pairs = delta_pairs(view, rows, cfg.n)
    elif cfg.strategy == "best-vs-worst":
        pairs = best_vs_worst_pairs(view, rows)
    else:
        return best_of_k(view, rows, cfg.verify != "none")
    if cfg.verify != "none":
        apply_verdicts(view, pairs, cfg.on_inverted)
    return pairs


def _write(cfg: PrefsConfig, kind: str, run: RunDir, prompts: pa.Table, samples: pa.Table, sides: list[Side],
           usage: list[tuple[int, int, int]], dropped_prompts: dict[str, int], total: Usage) -> RunResult:
    texts = [None if s == "failed" else render_reasoning(r, c, cfg.think_format) for s, r, c in zip(
        samples.column("status").to_pylist(), samples.column("reasoning").to_pylist(),
        samples.column("content").to_pylist(), strict=True)]
    view = SampleView.of(samples, texts, prompts.num_rows, cfg.n)
    pairs = pair_samples(cfg, kind, view, prompts.num_rows)
    table = pair_table(samples, texts, prompts, pairs, cfg.strategy, cfg.source or Path(cfg.prompts).name)
    preference = cfg.strategy != "rejection-sampling"
    kept, removed = split_kept(table)
    if not preference:
        kept = sft_rows(kept)
    write_table(kept, run.product)
    write_table(removed, Path(run.path) / REMOVED)
    stats = pair_stats(kept, removed, preference)
    per_model = {s.spec.model: {"key": s.key, "backend": s.spec.backend, "requests": u[0], "prefill_tokens": u[1],
                                "sampled_tokens": u[2], "status_counts": _status_counts(samples, s.spec.model)}
                 for s, u in zip(sides, usage, strict=True)}
    return run.finish(rows_in=prompts.num_rows + sum(dropped_prompts.values()), rows_out=kept.num_rows,
                      dropped={**dropped_prompts, **stats["dropped"]},
                      usage=total,
                      strategy=cfg.strategy, scorer=kind, pair_stats=stats, models=per_model,
                      kind="preference" if preference else "sft", runtime=spec_loads(*(s.spec for s in sides)))


def _status_counts(samples: pa.Table, model: str) -> dict[str, int]:
    import pyarrow.compute as pc

    mine = samples.filter(pc.equal(samples.column("model"), model)).column("status").value_counts().to_pylist()
    return {d["values"]: d["counts"] for d in mine}
