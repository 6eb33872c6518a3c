"""distill_data: teacher distillation that never loses work.

`wb distill` sends every (prompt id, sample index) unit to a teacher (OpenAI-compatible HTTP endpoints,
in-process transformers, or in-process vLLM), records each unit's outcome in a durable ledger, verifies
answers (math, code, LLM judge), and writes `data.parquet` + `sft.parquet`. Heavy libraries are imported
lazily.

Python API: `from distill_data import distill, DistillConfig, merge_shards`. The generation layer it is
built on, which every stage shares, is the `llm` package (`EndpointSpec`, `open_generator`, `Ledger`,
`run_units`, the verifiers, `wb serve`); evaluation is the `evals` package.
"""

from workbench.lazy import lazy_exports  # noqa: E402

_API = {"distill": "distill_data.pipeline", "DistillConfig": "distill_data.config", "merge_shards": "distill_data.shards"}
__all__ = sorted(_API)

__getattr__ = lazy_exports(__name__, _API)
