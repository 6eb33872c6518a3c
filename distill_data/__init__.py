"""distill_data: teacher distillation that never loses work.

`wb distill` sends every (prompt id, sample index) unit to a teacher (OpenAI-compatible HTTP endpoints,
in-process transformers, or in-process vLLM), records each unit's outcome in a durable ledger, verifies
answers (math, code, LLM judge), and writes `data.parquet` + `sft.parquet`. `wb serve` is a small
OpenAI-compatible server over a local transformers model. Heavy libraries are imported lazily.
"""
