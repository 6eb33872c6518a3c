"""In-process vLLM backend (the `vllm` extra): a thin adapter over `vllm.LLM.chat` with native `n`.

Concurrent units are micro-batched into one `LLM.chat` call, whose scheduler batches them further. This
adapter is not exercised in the test suite (vLLM needs a GPU); `wb serve`-style HTTP to `vllm serve` is the
tested path to vLLM.
"""

from __future__ import annotations

from llm.backends.base import Choice, Completion
from llm.batcher import BatchedBackend, Batcher, GenRequest
from workbench.errors import require


class VLLMBackend(BatchedBackend):
    def __init__(self, model: str, max_batch: int = 256):
        import hashlib

        vllm = require("vllm", "vllm")
        self._vllm = vllm
        self.llm = vllm.LLM(model=model)
        self.name = f"vllm:{model}"
        template = getattr(self.llm.get_tokenizer(), "chat_template", None) or ""
        self.template_id = hashlib.sha256(template.encode()).hexdigest()[:16]
        self.batcher = Batcher(self._generate, max_batch)

    def _generate(self, requests: list[GenRequest]) -> list[Completion]:
        params = [self._vllm.SamplingParams(n=r.n, temperature=r.params.temperature, top_p=r.params.top_p,
                                            max_tokens=r.params.max_tokens, seed=r.params.seed,
                                            stop=list(r.params.stop) or None) for r in requests]
        outputs = self.llm.chat([r.messages for r in requests], params, use_tqdm=False)
        completions = []
        for out in outputs:
            choices = [Choice(o.text, None, o.finish_reason, len(o.token_ids)) for o in out.outputs]
            completions.append(Completion(choices, len(out.prompt_token_ids or []),
                                          sum(c.completion_tokens for c in choices)))
        return completions
