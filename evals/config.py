"""`EvalConfig`: every option of `wb eval`, with help text; it is written into the run's manifest.

The endpoint options (shared by the model under evaluation and its judge) are `llm.options.EndpointOptions`.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm.options import EndpointOptions, backend_option, base_url_option, cache_option, max_cost_option
from workbench.config import RunOptions, option


@dataclass
class EvalConfig(EndpointOptions, RunOptions):
    model: str = option("", "the model: its name on the endpoint (with --base-url) or a local model directory")
    benchmark: list[str] = option([], "benchmarks: bundled gsm8k, math500, or prompt/answer files (jsonl, parquet, "
                                      "a run directory)")
    output: str = option("", "run directory to write (re-running the same command resumes it)")
    base_url: list[str] = base_url_option("the model")
    backend: str = backend_option("the model")
    prompt_field: str | None = option(None, "column holding the prompt in benchmark files (default: prompt; "
                                            "bundled benchmarks use question)")
    answer_field: str | None = option(None, "column holding the reference answer in benchmark files "
                                            "(default: answer)")
    verify: str = option("math", "verifier for benchmark files: math, exact (the final answer as a string), judge "
                                 "(an LLM grades each response against the reference: --judge-model), or a user "
                                 "package.module:function (bundled benchmarks always use math)")
    judge_model: str | None = option(None, "the model that grades responses for --verify judge (required with it)")
    judge_base_url: list[str] = base_url_option("the judge (default: --base-url, with --backend)")
    judge_backend: str = backend_option("the judge")
    system: str | None = option(None, "system prompt prepended to every prompt")
    limit: int | None = option(None, "use only the first N items of each benchmark", min=1)
    n: int = option(1, "samples per item (pass@k and maj@k use k = n)", min=1)
    temperature: float = option(0.0, "sampling temperature (0 = greedy; use > 0 with --n > 1)", min=0.0)
    top_p: float = option(1.0, "nucleus sampling mass", min=0.0, max=1.0)
    max_tokens: int = option(1024, "completion budget per sample (a cut answer counts as truncated and wrong)",
                             min=1)
    seed: int | None = option(0, "sampling seed sent to the backend")
    verify_workers: int = option(2, "processes for math verification", min=1)
    progress_seconds: float = option(2.0, "seconds between progress lines (0: none)")
    bootstrap_seed: int = option(0, "seed of the bootstrap intervals")
    max_cost: float | None = max_cost_option()
    cache: bool = cache_option()
