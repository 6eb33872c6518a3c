"""`DistillConfig`: every option of `wb distill`, with help text; it is written into the manifest.

It builds on `llm.options.JobOptions`, the options every job that generates shares (`wb prefs` too).
"""

from __future__ import annotations

from dataclasses import dataclass

from llm.options import JobOptions
from llm.reasoning import THINK_FORMATS
from workbench.config import option


@dataclass
class DistillConfig(JobOptions):
    model: str = option("", "teacher model name (HTTP) or local model path (hf, vllm)")
    base_url: list[str] = option([], "OpenAI-compatible endpoint(s), repeated or a file of URLs; requests go to "
                                     "the least-loaded healthy one")
    backend: str = option("openai", "where generation runs", choices=["openai", "hf", "vllm"])
    n: int = option(1, "samples per prompt (native `n` where the backend has it)", min=1)
    temperature: float = option(0.6, "sampling temperature", min=0.0)
    top_p: float = option(0.95, "nucleus sampling", min=0.0, max=1.0)
    max_tokens: int = option(16384, "completion budget per sample; reasoning teachers need 16-32k", min=1)
    seed: int | None = option(None, "sampling seed sent to the backend")
    only_verified: bool = option(False, "write only verified rows to data.parquet and sft.parquet")
    judge_model: str | None = option(None, "judge model for --verify judge (default: --model)")
    judge_base_url: list[str] = option([], "judge endpoint(s) (default: --base-url)")
    shard: str | None = option(None, "i/n: generate only the prompts whose id hashes to shard i of n, one client "
                                     "host each with its own output; combine them with `wb distill --merge`")
    think_format: str = option("think-tags", "how sft.parquet renders reasoning", choices=list(THINK_FORMATS))
