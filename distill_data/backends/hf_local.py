"""In-process transformers backend: the same batching engine as `wb serve`, without HTTP."""

from __future__ import annotations

from distill_data.backends.base import Completion, PermanentError, SamplingParams
from distill_data.batcher import Batcher, GenRequest


class HFBackend:
    native_n = True

    def __init__(self, model_path: str, max_batch: int = 16):
        from distill_data.local_engine import LocalEngine

        self.engine = LocalEngine(model_path)
        self.name = f"hf:{model_path}"
        self.template_id = self.engine.template_id
        self.batcher = Batcher(self.engine.generate_batch, max_batch)

    async def chat(self, messages: list[dict], n: int, params: SamplingParams) -> Completion:
        try:
            return await self.batcher.submit(GenRequest(messages, n, params))
        except ValueError as exc:
            raise PermanentError(str(exc)) from None

    async def aclose(self) -> None:
        await self.batcher.aclose()
