"""The step runner behind `wb curate`, `wb dedup` and `wb decontam`.

Streaming steps (filters, PII, decontamination) run batch by batch; their survivors are staged in the
run directory when dedup follows, because dedup reads its input twice (signatures, then verification)
and a third time to write. Kept rows go to `data.parquet`, removed rows to `removed.parquet`, and the
manifest gets counts per reason, per-step stats and the dedup statistics. With `on_bad_row="drop"`
rows the input validator refuses go to `removed.parquet` too: with the `turns` filter's reason when it
has one for the row (`turns:no_response`), else `invalid_row` with the validator's message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa

from curate.dedup import DedupConfig, apply_plan, parquet_batches, plan_dedup, save_index
from curate.inputs import Inputs
from curate.removed import Outputs, with_reasons
from curate.step import Step, run_steps
from workbench.config import RunOptions
from workbench.errors import InputError
from workbench.io import write_tables
from workbench.rundir import RunDir

STAGED = ".staged.parquet"


def run_pipeline(specs: list[str], output: str | Path, stage: str, config: object, options: RunOptions,
                 fields: list[str], make_steps: Callable[[list[str]], list[Step]], dedup: DedupConfig | None,
                 engine: str = "local", ray_address: str | None = None, on_bad_row: str = "error") -> dict:
    """Run `make_steps(fields)` then (optionally) dedup over the sources; return the manifest. `config` is
    what the manifest records, `options` how the run directory is written. With `engine="ray"` the steps
    and dedup's heavy parts run on Ray (`curate.ray_engine`), same output. `on_bad_row` is "error" (an
    invalid record stops the run, naming file, row and field) or "drop" (it goes to removed.parquet)."""
    from curate.ray_engine import check_engine, ray_session

    check_engine(engine, ray_address)
    if engine == "ray" and dedup is not None and dedup.against:
        raise InputError("--against runs on the local engine only (drop --engine ray for this run)")
    if engine == "local":
        return _run(specs, output, stage, config, options, fields, make_steps, dedup, None, on_bad_row)
    with ray_session(ray_address):
        return _run(specs, output, stage, config, options, fields, make_steps, dedup, engine, on_bad_row)


def _run(specs: list[str], output: str | Path, stage: str, config: object, options: RunOptions, fields: list[str],
         make_steps: Callable[[list[str]], list[Step]], dedup: DedupConfig | None, engine: str | None,
         on_bad_row: str) -> dict:
    inputs = Inputs(specs, on_bad_row)
    fields = inputs.fields(fields)
    steps = make_steps(fields)
    rows_in = 0
    with RunDir(output, stage, config, inputs=inputs.sources, overwrite=options.overwrite, argv=options.argv) as run:
        outputs = Outputs(run.product, inputs.schema)
        for step in steps:
            step.on_removed = lambda removed: outputs.write(None, removed)
        extra: dict = {"fields": fields}
        try:
            first_phase = "filters" if steps else ("dedup: signatures" if dedup else "copying")

            def set_aside(bad: pa.Table, messages: list[str]) -> None:
                nonlocal rows_in
                rows_in += bad.num_rows
                outputs.write(None, invalid_rows(bad, messages, steps))

            def counted() -> Iterator[pa.Table]:
                nonlocal rows_in
                for table in inputs.batches(set_aside):
                    rows_in += table.num_rows
                    run.progress.update(done=rows_in, phase=first_phase, unit="rows")
                    yield table

            if engine == "ray" and steps:
                from curate.ray_engine import run_steps_on_ray

                survivors = run_steps_on_ray(counted(), make_steps, fields, steps,
                                             lambda removed: outputs.write(None, removed))
            else:
                survivors = (run_steps(table, steps) for table in counted())
            if dedup is None:
                _write_behind(outputs, ((table, None) for table in survivors))
            else:
                batches = inputs.batches
                if steps:
                    write_tables(survivors, run.path / STAGED, schema=inputs.schema)
                    batches = parquet_batches(run.path / STAGED)
                else:
                    counted_once = counted()
                    batches = _first_then(counted_once, inputs.batches)
                if steps:
                    batches = _watched(batches, run, "dedup: signatures")
                dedup_engine = None
                if engine == "ray":
                    from curate.ray_engine import RayDedup

                    dedup_engine = RayDedup()
                plan = plan_dedup(batches, fields, dedup, run.path, dedup_engine)
                if dedup_engine is not None:
                    dedup_engine.close()
                run.progress.update(phase="dedup: writing", done=0, total=len(plan.reason))
                with ThreadPoolExecutor(max_workers=1) as side:  # the index is written while the rows are
                    index = side.submit(save_index, plan, dedup, run.path)
                    _write_behind(outputs, apply_plan(_watched(batches, run, "dedup: writing"), plan))
                    extra["minhash"] = index.result()
                extra["dedup"] = plan.stats
            outputs.close()
        except BaseException:
            outputs.abort()
            raise
        finally:
            (run.path / STAGED).unlink(missing_ok=True)
        extra["steps"] = {step.name: step.stats() for step in steps}
        extra["engine"] = engine or "local"
        for step in steps:
            if hasattr(step, "matches"):
                extra["contamination"] = step.matches
        return run.finish(rows_in=rows_in, rows_out=outputs.kept, dropped=dict(outputs.reasons), **extra)


def invalid_rows(bad: pa.Table, messages: list[str], steps: list[Step]) -> pa.Table:
    """`bad` (rows the validator refused, one message each) as removed rows: the `turns` filter's reason
    where it has one (counted in its stats), else `invalid_row` with the validator's message."""
    turns = next((step for step in steps if step.name == "turns"), None)
    decisions = turns.decide_rows(bad) if turns is not None else [True] * bad.num_rows
    reasons, details = [], []
    for decision, message in zip(decisions, messages, strict=True):
        if decision is True:
            reasons.append("invalid_row")
            details.append(message)
        else:
            reasons.append(decision[1])
            details.append(f"{decision[2]} ({message})" if len(decision) > 2 else message)
            turns.dropped[decision[1]] += 1
    if turns is not None:
        turns.rows_in += bad.num_rows
    return with_reasons(bad, reasons, details)


def _watched(batches: Callable[[], Iterator[pa.Table]], run: RunDir, phase: str) -> Callable[[], Iterator[pa.Table]]:
    """`batches` whose reading advances the run's progress.json under `phase`."""

    def read() -> Iterator[pa.Table]:
        done = 0
        for table in batches():
            done += table.num_rows
            run.progress.update(done=done, phase=phase)
            yield table
    return read


def _write_behind(outputs: Outputs, pairs: Iterator[tuple[pa.Table | None, pa.Table | None]]) -> None:
    """Write each (kept, removed) pair on a writer thread while the next one is computed (Parquet
    encoding and compression release the GIL, so reading and writing overlap on two cores)."""
    with ThreadPoolExecutor(max_workers=1) as writer:
        pending: Future | None = None
        for kept, removed in pairs:
            if pending is not None:
                pending.result()
            pending = writer.submit(outputs.write, kept, removed)
        if pending is not None:
            pending.result()


def _first_then(first: Iterator[pa.Table], again: Callable[[], Iterator[pa.Table]]) -> Callable[[], Iterator[pa.Table]]:
    """A batches() whose first call is `first` (to count rows) and later calls re-read the inputs."""
    calls = {"n": 0}

    def batches() -> Iterator[pa.Table]:
        calls["n"] += 1
        return first if calls["n"] == 1 else again()
    return batches
