"""The Python API of curation: `curate`, `deduplicate` and `decontaminate` (`wb curate`, `wb dedup`,
`wb decontam`), the functions the CLI and the app call.

Each takes its config dataclass, the sources and the output directory, checks the options, runs the
pipeline and returns a `RunResult`; bad input raises the same one-line `InputError` as the CLI.
`engine="ray"` (and `ray_address`, default: a local Ray) runs the same steps on Ray with the same output.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from curate.config import CurateConfig
from curate.decontam import DecontamConfig
from curate.dedup import DedupConfig
from workbench.config import validate
from workbench.rundir import RunResult

Sources = Sequence[str | os.PathLike]


def make_steps(config: CurateConfig, fields: list[str]) -> list:
    """The streaming steps of a curate run, in order: filters, PII, decontamination."""
    from curate.filters import build_filters

    steps = build_filters(config.filters, config.filter_settings, fields)
    if config.pii == "redact":
        from curate.filters.pii import PiiRedactor

        steps.append(PiiRedactor(fields))
    elif config.pii == "drop":
        from curate.filters.pii import PiiFilter

        steps.append(PiiFilter(fields))
    if config.decontam:
        from curate.decontam import DecontamFilter, benchmarks_from

        benchmarks = benchmarks_from(DecontamConfig(benchmark=config.benchmark, ngram=config.decontam_ngram))
        steps.append(DecontamFilter(fields, benchmarks, config.decontam_ngram))
    return steps


def curate(config: CurateConfig, sources: Sources, output: str | os.PathLike, engine: str = "local",
           ray_address: str | None = None) -> RunResult:
    """Filters, PII, decontamination, then exact and near dedup, in one run written to `output`."""
    from curate.dedup import check_dedup_config
    from curate.pipeline import run_pipeline

    validate(config)
    dedup_cfg = dataclasses.replace(config.dedup_settings, field=list(config.field)) if config.dedup else None
    if dedup_cfg is not None:
        check_dedup_config(dedup_cfg)
    manifest = run_pipeline([str(s) for s in sources], output, "curate", {"curate": config, "dedup": dedup_cfg},
                            config, config.field, lambda fields: make_steps(config, fields), dedup=dedup_cfg,
                            engine=engine, ray_address=ray_address,
                            on_bad_row="drop" if "turns" in config.filters else config.on_bad_row)
    return RunResult.of(output, manifest)


def deduplicate(config: DedupConfig, sources: Sources, output: str | os.PathLike, engine: str = "local",
                ray_address: str | None = None) -> RunResult:
    """Exact and MinHash near dedup with a keep policy (and `against` an earlier run)."""
    from curate.dedup import check_dedup_config
    from curate.pipeline import run_pipeline

    validate(config)
    check_dedup_config(config)
    manifest = run_pipeline([str(s) for s in sources], output, "dedup", config, config, config.field, lambda fields: [],
                            dedup=config, engine=engine, ray_address=ray_address)
    return RunResult.of(output, manifest)


def decontaminate(config: DecontamConfig, sources: Sources, output: str | os.PathLike, engine: str = "local",
                  ray_address: str | None = None) -> RunResult:
    """Drop rows sharing a word n-gram with a benchmark's questions or answers."""
    from curate.decontam import DecontamFilter, benchmarks_from
    from curate.pipeline import run_pipeline

    validate(config)
    benchmarks = benchmarks_from(config)
    manifest = run_pipeline([str(s) for s in sources], output, "decontam", config, config, config.field,
                            lambda fields: [DecontamFilter(fields, benchmarks, config.ngram)], dedup=None,
                            engine=engine, ray_address=ray_address)
    return RunResult.of(output, manifest)
