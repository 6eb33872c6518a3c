"""On-policy distillation: `wb train opd --model STUDENT --teacher PATH_OR_URL --prompts RUN_OR_FILE --output DIR`.

The student samples completions; the teacher scores exactly those tokens (at temperature 1); each token's advantage is
`kl_coef * (log p_teacher - log p_student)`, the negative of a one-sample reverse-KL estimate (Tinker's
on-policy distillation), plus the group advantage of any `--reward` (task reward). The loss is the same
clipped surrogate as GRPO (`--loss-type dapo` by default: a token mean over the batch). metrics.jsonl logs
`reverse_kl`, the mean per-token log p_student - log p_teacher over sampled tokens.

The teacher is a local model directory sharing the student's tokenizer, or the base URL of an
OpenAI-compatible server that returns prompt log-probs from `/completions` with `echo: true,
logprobs: 0` and token-id prompts (vLLM does; so does `wb serve`), reached with the endpoint options every
command that calls a model takes (`--max-concurrency`, `--rpm`, `--timeout`, `--max-attempts`, ...).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from llm.options import EndpointOptions
from trainers.config import add_train_arguments
from trainers.rl import (
    RLConfig,
    item_counts,
    make_item,
    rollout_metrics,
    run_rl,
    setup_rl,
    train_items,
)
from workbench.config import option
from workbench.errors import InputError
from workbench.rundir import RunResult

if TYPE_CHECKING:
    from llm import EndpointSpec, RetryPolicy


@dataclass
class OPDConfig(EndpointOptions, RLConfig):
    teacher: str | None = option(None, "teacher: a model directory (same tokenizer) or an OpenAI-compatible base URL "
                                       "(reached with the endpoint options)")
    teacher_model: str = option("teacher", "model name sent to a teacher endpoint")
    kl_coef: float = option(1.0, "weight of the per-token teacher - student log-prob advantage")
    num_generations: int = option(4, "completions sampled per prompt", min=1)
    lr: float = option(1e-5, "peak learning rate", min=0.0)

    def check(self) -> None:
        super().check()
        if not self.teacher:
            raise InputError("--teacher is required (a model directory or an http(s) URL)")
        teacher_endpoint(self)  # bad endpoint options fail before the student loads


class LocalTeacher:
    """A local causal LM scoring token sequences; its tokenizer must match the student's."""

    def __init__(self, path: str, student_tokenizer):
        from trainers.client import ClientConfig, TrainingClient, load_tokenizer

        tokenizer = load_tokenizer(path)
        if tokenizer.get_vocab() != student_tokenizer.get_vocab():
            raise InputError(f"{path}: the teacher's tokenizer differs from the student's; on-policy distillation "
                             "scores the student's token ids, so both must share one vocabulary")
        self.client = TrainingClient.load(ClientConfig(model=path, lr=0.0), tokenizer)

    def score(self, items) -> list[np.ndarray]:
        """Log-probs (temperature 1) of each item's completion tokens."""
        from trainers.collate import collate

        out = []
        for i in range(0, len(items), 8):
            chunk = items[i : i + 8]
            batch = collate([it.example for it in chunk], "padded", self.client.tokenizer.pad_token_id)
            flat = self.client.compute_logprobs(batch).double().numpy()
            bounds = np.cumsum([0, *[len(it.adv) for it in chunk]])
            out += [flat[bounds[j] : bounds[j + 1]] for j in range(len(chunk))]
        return out


class EndpointTeacher:
    """An OpenAI-compatible `/completions` endpoint that echoes prompt log-probs (vLLM, `wb serve`), asked
    through the generation layer: concurrent requests, retries and 429 handling as distill has them, and
    the prefill tokens counted (`usage`)."""

    def __init__(self, spec: EndpointSpec, retry: RetryPolicy):
        self.spec = spec
        self.retry = retry
        self.prefill_tokens = 0

    def score(self, items) -> list[np.ndarray]:
        """Log-probs (temperature 1) of each item's completion tokens, the items' requests in flight at once."""
        import asyncio

        return asyncio.run(self._score(items))

    async def _score(self, items) -> list[np.ndarray]:
        import asyncio

        from llm import SamplingParams, open_generator

        gen, _ = open_generator(self.spec, SamplingParams(), self.retry)
        try:
            results = await asyncio.gather(*(gen.prompt_logprobs([int(t) for t in it.example.ids]) for it in items))
        finally:
            await gen.aclose()
        self.prefill_tokens += gen.stats.prefill_tokens
        out = []
        for it, (logps, error) in zip(items, results, strict=True):
            if logps is None:
                raise InputError(f"teacher {self.spec.base_urls[0]}: cannot score tokens via /completions with echo "
                                 f"and logprobs ({error})")
            n = len(it.adv)
            out.append(np.asarray(logps[len(it.example.ids) - n :], dtype=np.float64))
        return out


def teacher_endpoint(cfg: OPDConfig) -> EndpointSpec | None:
    """The teacher's endpoint when `--teacher` is a URL (`--teacher-model` served there, reached with the
    command's endpoint options); None for a local model directory."""
    if not cfg.teacher.startswith(("http://", "https://")):
        return None
    from llm.options import endpoint_spec

    return endpoint_spec(cfg, cfg.teacher_model, [cfg.teacher.rstrip("/")], role="teacher")


def load_teacher(cfg: OPDConfig, tokenizer) -> LocalTeacher | EndpointTeacher:
    """The teacher `--teacher` names: an endpoint or a local model sharing the student's tokenizer."""
    spec = teacher_endpoint(cfg)
    if spec is None:
        return LocalTeacher(cfg.teacher, tokenizer)
    from llm.options import retry_policy

    return EndpointTeacher(spec, retry_policy(cfg))


def distill_items(groups, teacher_logps: list[np.ndarray], kl_coef: float, task_adv: list[np.ndarray] | None):
    """Items with per-token advantages kl_coef * (teacher - sampler) (+ the group task advantage), and the
    mean per-token reverse KL estimate."""
    from trainers.rl_losses import opd_advantages

    items, kl_sum, n = [], 0.0, 0
    k = 0
    for gi, g in enumerate(groups):
        for j, tokens in enumerate(g.tokens):
            if not tokens:
                continue
            student = np.asarray(g.sampler_logps[j], dtype=np.float64)
            adv = opd_advantages(teacher_logps[k], student, kl_coef)
            if task_adv is not None:
                adv = adv + task_adv[gi][j]
            kl_sum += float((student - teacher_logps[k]).sum())
            n += len(tokens)
            items.append(make_item(g.prompt_ids, tokens, adv, g.sampler_logps[j]))
            k += 1
    return items, kl_sum / max(n, 1)


def train_opd(cfg: OPDConfig, log=print) -> RunResult:
    """Run (or resume) on-policy distillation into `cfg.output`; return the manifest."""
    from trainers.rollouts import advantages_for, sample_groups, score_groups

    run = setup_rl(cfg)
    teacher = load_teacher(cfg, run.tokenizer)
    log(f"opd: {len(run.prompts):,} prompts, {run.total} steps, teacher {cfg.teacher}")

    def step_fn(step: int) -> dict:
        t0 = time.perf_counter()
        groups = sample_groups(run.client, run.step_prompts(step), cfg.num_generations, cfg.max_new_tokens,
                               cfg.temperature, cfg.top_p, cfg.sample_chunk)
        task_adv = None
        if run.specs:
            score_groups(groups, run.specs, run.tokenizer)
            task_adv = advantages_for(groups, cfg.scale_rewards)
        sampled = sum(len(t) for g in groups for t in g.tokens)
        run.sampled += sampled
        t_gen = time.perf_counter() - t0
        t0 = time.perf_counter()
        scaffold = [make_item(g.prompt_ids, t, 0.0, lp) for g in groups
                    for t, lp in zip(g.tokens, g.sampler_logps, strict=True) if t]
        teacher_logps = teacher.score(scaffold)
        run.prefill = getattr(teacher, "prefill_tokens", 0)
        t_teacher = time.perf_counter() - t0
        items, reverse_kl = distill_items(groups, teacher_logps, cfg.kl_coef, task_adv)
        record = {**rollout_metrics(groups if run.specs else [], sampled, t_gen), "reverse_kl": reverse_kl,
                  "time/teacher": round(t_teacher, 4)}
        record.update(train_items(run.client, items, cfg, ref_needed=False))
        return {**record, **item_counts(items)}

    return run_rl(run, "train-opd", step_fn, log)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`wb train opd`: `--config` and one flag per OPDConfig field."""
    add_train_arguments(parser, OPDConfig)


def run(args: argparse.Namespace) -> int:
    from trainers.loop import run_train_command

    return run_train_command(args, OPDConfig, train_opd, "reverse_kl")
