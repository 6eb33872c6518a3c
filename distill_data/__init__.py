"""distill_data: teacher distillation that never loses work.

`wb distill` sends every (prompt id, sample index) unit to a teacher (OpenAI-compatible HTTP endpoints,
in-process transformers, or in-process vLLM), records each unit's outcome in a durable ledger, verifies
answers (math, code, LLM judge), and writes `data.parquet` + `sft.parquet`. `wb serve` is a small
OpenAI-compatible server over a local transformers model. Heavy libraries are imported lazily.

Python API: `from distill_data import distill, DistillConfig, evaluate, EvalConfig` (`wb eval`); the
generation layer other jobs reuse is `distill_data.generation` (`EndpointSpec`, `open_generator`, `Ledger`, `run_units`).
"""

from workbench.lazy import lazy_exports  # noqa: E402

_API = {"distill": "distill_data.pipeline", "DistillConfig": "distill_data.config", "merge_shards": "distill_data.shards",
        "evaluate": "distill_data.eval.pipeline", "EvalConfig": "distill_data.eval.config"}
__all__ = sorted(_API)

__getattr__ = lazy_exports(__name__, _API)
