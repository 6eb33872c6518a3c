"""What every training loop shares: the deterministic step plan, checkpoints and `metrics.jsonl`.

The data position is just the step number: step k always reads the same units (examples, or packed
bins) because each epoch's order is a permutation seeded by (seed, epoch). So resuming needs only the
step, and a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.errors import CostCapReached, InputError, WorkbenchError
from workbench.runfiles import METRICS

CHECKPOINTS = "checkpoints"


@dataclass
class StepPlan:
    """Which units each optimiser step reads. A unit is a list of example indices (one example, or a bin)."""

    units: list[list[int]]
    batch_size: int  # units per micro-batch
    grad_accum: int
    seed: int
    world_size: int = 1
    rank: int = 0

    @property
    def units_per_step(self) -> int:
        return self.batch_size * self.grad_accum * self.world_size

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(len(self.units) / self.units_per_step))

    def total_steps(self, epochs: float, max_steps: int | None) -> int:
        return max_steps if max_steps else max(1, math.ceil(epochs * self.steps_per_epoch))

    def step_units(self, step: int) -> list[list[int]]:
        """All ranks' units of `step`, in order."""
        epoch, offset = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.units))
        chosen = order[offset * self.units_per_step : (offset + 1) * self.units_per_step]
        return [self.units[i] for i in chosen.tolist()]

    def micro_batches(self, step: int) -> list[list[int]]:
        """This rank's micro-batches of `step`, each a flat list of example indices."""
        mine = self.step_units(step)[self.rank :: self.world_size]
        chunks = [mine[i : i + self.batch_size] for i in range(0, len(mine), self.batch_size)]
        return [[i for unit in chunk for i in unit] for chunk in chunks]


def run_dir(output: Path, stage: str, cfg, rank: int, inputs: list, own: tuple[str, ...] = ()):
    """The run directory on rank 0; other ranks get a stand-in whose `finish` only returns the manifest
    fields, so every rank runs the same code and only one writes. `own` names files written into it
    before it starts (a cache)."""
    from workbench.rundir import RunDir

    if rank == 0:
        # these may change between a run and its resumption; anything else would splice two runs together
        from llm.options import ENDPOINT_OPTIONS

        may_change = ("max_steps", "max_cost", "epochs", "save_every", "keep_checkpoints", "log_every", "eval_every",
                      "max_eval_rows", "output", "eval_benchmark", "eval_benchmark_every", "eval_limit",
                      "eval_max_tokens", "eval_verify", "eval_prompt_field", "eval_answer_field",
                      *ENDPOINT_OPTIONS)  # how a remote teacher is reached, not what it answers
        return RunDir(output, stage, cfg, inputs=inputs, resumable=True, resume_guard=may_change, own=own)

    from workbench.rundir import NullProgress

    class _Quiet(contextlib.AbstractContextManager):
        progress = NullProgress()

        def __exit__(self, *exc):
            return None

        def finish(self, **fields):
            return fields

    return _Quiet()


def latest_checkpoint(output: Path) -> tuple[int, Path] | None:
    """(step, directory) of the newest complete checkpoint under `output/checkpoints`, if any."""
    root = output / CHECKPOINTS
    found = sorted((int(p.name.split("-")[1]), p) for p in root.glob("step-*") if (p / "state.pt").exists()) \
        if root.is_dir() else []
    return found[-1] if found else None


def save_checkpoint(client, output: Path, step: int, keep: int) -> None:
    """Save the client's state at `step` and keep only the newest `keep` checkpoints."""
    client.save_state(output / CHECKPOINTS / f"step-{step:06d}", step=step)
    if client.rank != 0:
        return
    done = sorted(p for p in (output / CHECKPOINTS).glob("step-*") if (p / "state.pt").exists())
    for old in done[: max(0, len(done) - keep)]:
        shutil.rmtree(old, ignore_errors=True)


class MetricsLog:
    """Appends one JSON object per line to `metrics.jsonl`; on resume drops lines past the checkpoint."""

    def __init__(self, output: Path, resume_step: int, enabled: bool = True):
        self.path = output / METRICS
        self.enabled = enabled
        self.last: dict = {}
        if self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= resume_step]
            self.last = json.loads(kept[-1]) if kept else {}
            if enabled:
                self.path.write_text("".join(line + "\n" for line in kept))
        elif enabled:
            self.path.write_text("")

    def write(self, record: dict) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def _silent(*_args: object) -> None:
    return None


def read_metrics(output: str | Path) -> list[dict]:
    path = Path(output) / METRICS
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def train_usage(cfg, trained_tokens: int, sampled_tokens: int = 0, prefill_tokens: int = 0):
    """The `Usage` of a training run, priced with `--price-trained` / `--price-sampled` when given, and
    `prefill_tokens` (what a remote teacher read) with `--price-in` where the command calls an endpoint."""
    from llm.options import EndpointOptions, token_cost
    from workbench.rundir import Usage

    cost = None
    if cfg.price_trained is not None or cfg.price_sampled is not None:
        cost = (trained_tokens * (cfg.price_trained or 0.0) + sampled_tokens * (cfg.price_sampled or 0.0)) / 1e6
    teacher = token_cost(prefill_tokens, 0, cfg.price_in, None) if isinstance(cfg, EndpointOptions) else None
    if teacher is not None:
        cost = (cost or 0.0) + teacher
    return Usage(prefill_tokens=int(prefill_tokens), sampled_tokens=int(sampled_tokens),
                 trained_tokens=int(trained_tokens), cost_usd=cost)


def _shown(record: dict) -> str:
    """The progress line of a metrics record: the headline numbers only."""
    shown = {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in record.items()
             if k in ("step", "loss", "eval_loss", "lr", "grad_norm", "tokens_per_s", "rewards/margins",
                      "rewards/accuracies", "reward", "reverse_kl") or (k.startswith("eval/") and k.endswith("/accuracy"))}
    return " ".join(f"{k}={v}" for k, v in shown.items())


def _bench_eval(cfg, client) -> tuple[list, int]:
    """(benchmark items to score during training, every how many steps); none on ranks other than 0."""
    if not getattr(cfg, "eval_benchmark", None) or client.rank != 0:
        return [], 0
    from trainers.bench_eval import load_bench_items

    return load_bench_items(cfg, client.tokenizer), cfg.eval_benchmark_every


def train_loop(client, cfg, output: Path, total_steps: int, step_fn, eval_fn=None, eval_every: int = 0,
               log=print, progress=None, sampled_tokens=lambda: 0, after_step=None) -> dict:
    """Resume from the newest checkpoint, then for each step: `step_fn(step)` (forward/backward over the
    step's micro-batches; returns metrics with `tokens` and `trained_tokens`), `optim_step`,
    `after_step(step + 1)` (e.g. push the new weights to a generator; returns metrics to log), one line in
    metrics.jsonl, a checkpoint every `cfg.save_every` steps. Returns the last record."""
    import time

    from trainers.bench_eval import bench_metrics

    if client.rank != 0:
        log = _silent
    if getattr(cfg, "max_cost", None) is not None and cfg.price_trained is None and cfg.price_sampled is None:
        raise InputError(f"--max-cost {cfg.max_cost:g} needs --price-trained and/or --price-sampled (USD per million "
                         "tokens) to know what a step costs")
    found = latest_checkpoint(output)
    start = 0
    if found:
        start = client.load_state(found[1])["step"]
        log(f"resuming from {found[1]} (step {start})")
    metrics = MetricsLog(output, start, enabled=client.rank == 0)
    record: dict = {"step": start}
    benches, bench_every = _bench_eval(cfg, client)
    if benches and start == 0:  # the starting point, so a run's effect is the difference
        first = {"step": 0, **bench_metrics(client, benches, cfg.eval_max_tokens)}
        metrics.write(first)
        log(_shown(first))
    for step in range(start, total_steps):
        t0 = time.perf_counter()
        record = {"step": step + 1, **step_fn(step)}
        check_finite(record, output)  # before the optimiser applies a NaN gradient
        record.update(client.optim_step())
        if after_step is not None:
            record.update(after_step(step + 1) or {})
        record["trained_tokens_total"] = metrics.last.get("trained_tokens_total", 0) + record["trained_tokens"]
        metrics.last = record
        seconds = time.perf_counter() - t0
        record["tokens_per_s"] = round(record["tokens"] / seconds, 1)
        record["step_seconds"] = round(seconds, 4)
        if eval_fn and eval_every and (step + 1) % eval_every == 0 and step + 1 < total_steps:
            record.update(eval_fn())
        if step + 1 == total_steps and eval_fn:
            record.update(eval_fn())
        if benches and ((bench_every and (step + 1) % bench_every == 0) or step + 1 == total_steps):
            record.update(bench_metrics(client, benches, cfg.eval_max_tokens))
        metrics.write(record)
        if progress is not None:
            progress.update(done=step + 1, total=total_steps, unit="steps", phase="training",
                            usage=train_usage(cfg, record["trained_tokens_total"], sampled_tokens()))
        if (step + 1) % max(cfg.log_every, 1) == 0 or step + 1 == total_steps:
            log(_shown(record))
        if cfg.save_every and (step + 1) % cfg.save_every == 0 and step + 1 < total_steps:
            save_checkpoint(client, output, step + 1, cfg.keep_checkpoints)
        check_cost(client, cfg, output, step + 1, total_steps, record["trained_tokens_total"], sampled_tokens())
    save_checkpoint(client, output, total_steps, cfg.keep_checkpoints)
    return record


def check_cost(client, cfg, output: Path, step: int, total_steps: int, trained: int, sampled: int) -> None:
    """After `step`: when the run's cost has reached `--max-cost`, save a checkpoint and raise `CostCapReached`."""
    cap = getattr(cfg, "max_cost", None)
    if cap is None or step >= total_steps:
        return
    cost = train_usage(cfg, trained, sampled).cost_usd
    if cost is None or cost < cap:
        return
    save_checkpoint(client, output, step, cfg.keep_checkpoints)
    raise CostCapReached(f"stopped at the cost cap after step {step} of {total_steps}: ${cost:,.4f} spent of "
                         f"--max-cost {cap:g}; raise --max-cost and re-run the same command to continue")


class TrainingDiverged(WorkbenchError):
    """The loss became NaN or infinite: the run stops, unfinished, at the last good checkpoint."""

    exit_code = 1


def check_finite(record: dict, output: Path) -> None:
    """Raise `TrainingDiverged` if the step's loss is not a finite number."""
    loss = record.get("loss")
    if loss is None or math.isfinite(loss):
        return
    checkpoint = latest_checkpoint(output)
    since = f"the last checkpoint is step {checkpoint[0]}" if checkpoint else "no checkpoint was saved"
    raise TrainingDiverged(f"step {record['step']}: the loss became {loss}; training stopped and the run is marked "
                           f"failed ({since}). Lower --lr, check the data and options (e.g. --beta), and train "
                           "into a new --output")


def run_train_command(args, config_cls, train, final_key: str = "loss") -> int:
    """The CLI body of `wb train sft|grpo|opd`: build the config, train, print where the model went."""
    from workbench.config import build_config
    from workbench.errors import InputError

    cfg = build_config(config_cls, args, getattr(args, "config", None))
    try:
        manifest = train(cfg)
    except FileNotFoundError as exc:
        raise InputError(str(exc)) from None
    print(f"wrote {manifest['model_dir']} (final {final_key} {manifest['final'].get(final_key, float('nan')):.4f})")
    return 0
