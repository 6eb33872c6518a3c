"""`wb select`: keep the best rows by a score instead of a threshold (OpenThoughts3 found question
selection by teacher-response length or LLM-judged difficulty mattered more than answer filtering).

    wb select SOURCE... --strategy length|random|classifier|difficulty --keep 1000|0.25 --output DIR

Scores: `length` the response's characters (longest teacher response: best in OpenThoughts3);
`random` the baseline; `classifier` P(good) of a fastText model from `wb select train-classifier`;
`difficulty` an LLM judge's 1-10 rating of the question through distill_data's generation layer (one
request per distinct question, recorded in the run's ledger, so a re-run resumes and usage is counted).
With `--group-by COL` (default `prompt_id` when present) a group's score is its best row's and whole
groups are kept, so `--keep` counts questions. Kept rows go to `data.parquet` in input order with a
`select_score` column; the rest to `removed.parquet` with reason `not_selected` and their score.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.fields import field_text, split_fields
from curate.inputs import Inputs
from curate.removed import Outputs, with_reasons
from llm.options import (
    ENDPOINT_OPTIONS,
    EndpointOptions,
    backend_option,
    base_url_option,
    endpoint_spec,
    retry_policy,
    token_cost,
)
from workbench.config import RunOptions, option, validate
from workbench.errors import InputError, RunFailed
from workbench.rundir import RunDir, RunResult, Usage

if TYPE_CHECKING:
    from llm import EndpointSpec

STRATEGIES = ("length", "random", "classifier", "difficulty")
SCORE = "select_score"


@dataclass
class SelectConfig(EndpointOptions, RunOptions):
    """Every option of `wb select`; the difficulty judge is reached with the shared endpoint options."""

    strategy: str = option("length", "what ranks rows", choices=list(STRATEGIES))
    keep: str = option("", "rows (or groups) to keep, no default: a count such as 1000, or a fraction such as 0.25")
    field: list[str] = option([], "fields to score (default by record kind; length reads the response side, "
                                  "classifier and difficulty the prompt side)")
    group_by: str | None = option(None, "column whose rows are kept or dropped together, scored by their best "
                                        "row (default: prompt_id when present; `none` for single rows)")
    seed: int = option(0, "seed of the random strategy", min=0)
    classifier: str | None = option(None, "a `wb select train-classifier` run directory or model file")
    judge_model: str | None = option(None, "judge model for --strategy difficulty: its name on the endpoint "
                                           "(with --judge-base-url) or a local model directory")
    judge_base_url: list[str] = base_url_option("the difficulty judge")
    judge_backend: str = backend_option("the difficulty judge")
    judge_max_tokens: int = option(512, "completion budget of one rating", min=1)
    chunk: int = option(256, "questions rated between ledger commits (a killed run loses at most one chunk)",
                        min=1)


def rater_spec(config: SelectConfig) -> EndpointSpec:
    """The difficulty judge's endpoint: `--judge-model` on `--judge-base-url` (or in-process), with
    `wb select`'s endpoint options (concurrency, rate budget, timeout). Raises `InputError` for missing or bad
    options."""
    if not config.judge_model:
        raise InputError("--strategy difficulty needs --judge-model (on --judge-base-url, an OpenAI-compatible "
                         "endpoint such as `wb serve` or vLLM, or a local model directory)")
    return endpoint_spec(config, config.judge_model, config.judge_base_url, config.judge_backend, "judge")


def parse_keep(keep: str, total: int) -> int:
    """How many of `total` items `keep` asks for: an integer count, a fraction in (0, 1], or `N%`."""
    text = str(keep).strip()
    try:
        if text.endswith("%"):
            value, fraction = float(text[:-1]) / 100, True
        elif re.fullmatch(r"\d+", text):
            value, fraction = int(text), False
        else:
            value, fraction = float(text), True
    except ValueError:
        value, fraction = float("nan"), True
    if fraction and not 0 < value <= 1:
        raise InputError(f"--keep {keep!r}: expected a row count (e.g. 1000) or a fraction in (0, 1] (e.g. 0.25)")
    if not fraction and value < 1:
        raise InputError(f"--keep {keep!r}: keep at least one row")
    if fraction:  # a fraction of a non-empty input keeps at least one row (0.5 of one row is one, not zero)
        return min(total, max(1, int(round(value * total)))) if total else 0
    return min(total, int(value))


def top_mask(scores: np.ndarray, n: int) -> np.ndarray:
    """True for the `n` highest scores; NaN ranks last and ties go to the earlier item."""
    order = np.lexsort((np.arange(len(scores)), -np.nan_to_num(scores, nan=-np.inf)))
    mask = np.zeros(len(scores), dtype=bool)
    mask[order[:n]] = True
    return mask


def side_fields(fields: list[str], strategy: str) -> list[str]:
    prompts, responses = split_fields(fields)
    if strategy == "length":
        return responses or prompts
    return prompts or responses


class Scorer:
    """Scores for one batch of texts; `finish` runs any deferred work (the judge) once all are seen."""

    def __init__(self, config: SelectConfig, run: Path, progress: object):
        self.config = config
        self.run = run
        self.progress = progress
        self.usage = Usage()
        self.notes: dict = {}
        if config.strategy == "classifier":
            from curate.classifier import load

            if not config.classifier:
                raise InputError("--strategy classifier needs --classifier RUN_DIR (from `wb select train-classifier`)")
            self.model = load(config.classifier)
        self.rng = np.random.default_rng(config.seed)
        self.questions: list[str] = []

    def batch(self, texts: pa.Array) -> np.ndarray:
        strategy = self.config.strategy
        if strategy == "length":
            return pc.utf8_length(texts).to_numpy(zero_copy_only=False).astype(np.float64)
        if strategy == "random":
            return self.rng.random(len(texts))
        if strategy == "classifier":
            from curate.classifier import probabilities

            return probabilities(self.model, texts)
        start = len(self.questions)  # difficulty: rated after the pass, per distinct question
        self.questions.extend(texts.to_pylist())
        return np.arange(start, start + len(texts), dtype=np.float64)

    def finish(self, scores: np.ndarray) -> tuple[np.ndarray, list[str | None]]:
        """Final scores and a detail per row (the judge's justification, or why a row has no score)."""
        if self.config.strategy != "difficulty":
            return scores, [None] * len(scores)
        from curate.difficulty import question_id, rate_difficulty

        config = self.config
        rated = rate_difficulty(self.questions, rater_spec(config), retry_policy(config), config, self.run,
                                self.usage, self.notes, self.progress)
        self.usage.cost_usd = token_cost(self.usage.prefill_tokens, self.usage.sampled_tokens, config.price_in,
                                         config.price_out)
        values = [rated[question_id(q)] for q in self.questions]
        if values and all(v[0] is None for v in values):  # a judge that is down or wrong: nothing to rank by
            raise RunFailed(f"no question could be rated ({len(rated):,} of {len(rated):,}; first: "
                            f"{next((v[1] for v in values if v[1]), 'not rated')}); the run keeps what it asked: "
                            "fix the judge and re-run the same command to retry")
        return np.array([np.nan if v[0] is None else v[0] for v in values]), [v[1] for v in values]


def group_keys(table: pa.Table, group_by: str | None) -> list | None:
    return None if group_by is None else table[group_by].cast(pa.string()).to_pylist()


def select_rows(config: SelectConfig, sources: Sequence[str | os.PathLike], output: str | os.PathLike) -> RunResult:
    """Score every row, keep the top `config.keep` rows or groups and write the run to `output`
    (`wb select`); bad input raises `InputError`."""
    validate(config)
    if not config.keep:
        raise InputError("--keep is required: a row count such as 1000 or a fraction such as 0.25")
    if config.strategy == "difficulty":
        rater_spec(config)  # bad judge options fail before any row is read
    inputs = Inputs([str(s) for s in sources])
    fields = side_fields(inputs.fields(config.field), config.strategy)
    group_by = config.group_by
    if group_by is None and "prompt_id" in inputs.schema.names:
        group_by = "prompt_id"
    if group_by in ("none", ""):
        group_by = None
    if group_by is not None and group_by not in inputs.schema.names:
        raise InputError(f"--group-by {group_by!r}: no such column; columns are {inputs.schema.names}")
    resumable = config.strategy == "difficulty"
    with RunDir(output, "select", config, inputs=inputs.sources, resumable=resumable,
                resume_guard=("keep", "group_by", "seed", "chunk", "judge_base_url", *ENDPOINT_OPTIONS)
                if resumable else None) as run:
        scorer = Scorer(config, run.path, run.progress)
        parts, keys = [], []
        for table in inputs.batches():
            parts.append(scorer.batch(field_text(table, fields)))
            keys.extend(group_keys(table, group_by) or [])
            run.progress.update(done=sum(len(p) for p in parts), phase="score")
        scores, details = scorer.finish(np.concatenate(parts) if parts else np.zeros(0))
        run.progress.update(phase="write", done=0, total=len(scores))
        if group_by is None:
            unit_scores, unit_of_row = scores, np.arange(len(scores))
        else:
            names, unit_of_row = np.unique(np.array(keys, dtype=object).astype(str), return_inverse=True)
            first = np.full(len(names), len(scores))
            np.minimum.at(first, unit_of_row, np.arange(len(scores)))
            unit_scores = np.full(len(names), -np.inf)
            np.fmax.at(unit_scores, unit_of_row, np.nan_to_num(scores, nan=-np.inf))
            unit_scores[np.isneginf(unit_scores)] = np.nan
            order = np.argsort(first, kind="stable")  # ties go to the group seen first
            rank_of = np.empty(len(names), dtype=np.int64)
            rank_of[order] = np.arange(len(names))
            unit_scores = unit_scores[order]
            unit_of_row = rank_of[unit_of_row]
            if config.strategy == "random":  # one draw per group: a group's size must not raise its chances
                unit_scores = np.random.default_rng(config.seed).random(len(unit_scores))
                scores = unit_scores[unit_of_row]
        n_keep = parse_keep(config.keep, len(unit_scores))
        keep_unit = top_mask(unit_scores, n_keep)
        cutoff = float(np.nanmin(unit_scores[keep_unit])) if keep_unit.any() and not np.isnan(
            unit_scores[keep_unit]).all() else None
        keep_row = keep_unit[unit_of_row]
        outputs = Outputs(run.product, inputs.schema.append(pa.field(SCORE, pa.float64())))
        offset = 0
        try:
            for table in inputs.batches():
                n = table.num_rows
                score = pa.array(scores[offset:offset + n], pa.float64(), from_pandas=True)
                table = table.append_column(SCORE, score)
                keep = keep_row[offset:offset + n]
                drop = np.flatnonzero(~keep)
                removed = None
                if len(drop):
                    what = "group" if group_by else "row"
                    detail = [details[offset + i] or (f"{config.strategy} score {scores[offset + i]:.4g} "
                                                      f"below the cutoff {cutoff:.4g} of the {n_keep} kept {what}s"
                                                      if cutoff is not None else "no score")
                              for i in drop]
                    removed = with_reasons(table.take(pa.array(drop)), ["not_selected"] * len(drop), detail)
                outputs.write(table.filter(pa.array(keep)), removed)
                offset += n
                run.progress.update(done=offset)
            outputs.close()
        except BaseException:
            outputs.abort()
            raise
        stats = {"strategy": config.strategy, "fields": fields, "group_by": group_by, "units": len(unit_scores),
                 "kept_units": int(keep_unit.sum()), "cutoff": cutoff,
                 "score_mean_kept": _mean(scores[keep_row]), "score_mean_removed": _mean(scores[~keep_row]),
                 **scorer.notes}
        manifest = run.finish(rows_in=len(scores), rows_out=outputs.kept, dropped=dict(outputs.reasons),
                              usage=scorer.usage, select=stats)
    return RunResult.of(output, manifest)


def _mean(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return round(float(values.mean()), 4) if len(values) else None
