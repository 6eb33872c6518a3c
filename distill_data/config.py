"""`DistillConfig`: every option of `wb distill`, with help text; it is written into the manifest.

It builds on `llm.options.JobOptions`: the endpoint options every command that calls a model takes, and the
prompt, verification and progress options of a generation job (`wb prefs` too).
"""

from __future__ import annotations

from dataclasses import dataclass

from llm.options import JobOptions, backend_option, base_url_option
from llm.reasoning import THINK_FORMATS
from workbench.config import option


@dataclass
class DistillConfig(JobOptions):
    model: str = option("", "teacher: its name on the endpoint (with --base-url) or a local model directory")
    base_url: list[str] = base_url_option("the teacher")
    backend: str = backend_option("the teacher")
    n: int = option(1, "samples per prompt (native `n` where the backend has it)", min=1)
    temperature: float = option(0.6, "sampling temperature", min=0.0)
    top_p: float = option(0.95, "nucleus sampling", min=0.0, max=1.0)
    max_tokens: int = option(16384, "completion budget per sample; reasoning teachers need 16-32k", min=1)
    seed: int | None = option(None, "sampling seed sent to the backend")
    only_verified: bool = option(False, "write only verified rows to data.parquet and sft.parquet")
    judge_model: str | None = option(None, "judge model for --verify judge (default: --model)")
    judge_base_url: list[str] = base_url_option("the judge (default: --base-url, with --backend)")
    judge_backend: str = backend_option("the judge")
    shard: str | None = option(None, "i/n: generate only the prompts whose id hashes to shard i of n, one client "
                                     "host each with its own output; combine them with `wb distill --merge`")
    think_format: str = option("think-tags", "how sft.parquet renders reasoning", choices=list(THINK_FORMATS))
