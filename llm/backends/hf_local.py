"""In-process transformers backend: the same continuous-batching engine as `wb serve`, without HTTP."""

from __future__ import annotations

from llm.batcher import BatchedBackend, batcher_for


class HFBackend(BatchedBackend):
    def __init__(self, model_path: str, max_batch: int = 16, dtype: str = "auto", threads: int = 0):
        from llm.local_engine import LocalEngine

        self.engine = LocalEngine(model_path, dtype=dtype, threads=threads)
        self.name = f"hf:{model_path}"
        self.template_id = self.engine.template_id
        self.batcher = batcher_for(self.engine, max_batch)
