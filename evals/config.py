"""`EvalConfig`: every option of `wb eval`, with help text; it is written into the run's manifest."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.config import RunOptions, option


@dataclass
class EvalConfig(RunOptions):
    model: str = option("", "model name (HTTP) or local model directory (hf, vllm)")
    benchmark: list[str] = option([], "benchmarks: bundled gsm8k, math500, or prompt/answer files (jsonl, parquet, "
                                      "a run directory)")
    output: str = option("", "run directory to write (re-running the same command resumes it)")
    backend: str = option("hf", "where generation runs", choices=["hf", "openai", "vllm"])
    base_url: list[str] = option([], "OpenAI-compatible endpoint(s) for --backend openai")
    api_key_env: str = option("OPENAI_API_KEY", "environment variable holding the API key (may be unset)")
    prompt_field: str | None = option(None, "column holding the prompt in benchmark files (default: prompt; "
                                            "bundled benchmarks use question)")
    answer_field: str | None = option(None, "column holding the reference answer in benchmark files "
                                            "(default: answer)")
    verify: str = option("math", "verifier for benchmark files: math, exact (the final answer as a string), judge "
                                 "(an LLM grades each response against the reference: --judge-model), or a user "
                                 "package.module:function (bundled benchmarks always use math)")
    judge_model: str | None = option(None, "the model that grades responses for --verify judge (required with it)")
    judge_base_url: list[str] = option([], "the judge's OpenAI-compatible endpoint(s), repeated or a file of URLs "
                                           "(default: --base-url)")
    judge_backend: str = option("openai", "where the judge runs", choices=["openai", "hf", "vllm"])
    system: str | None = option(None, "system prompt prepended to every prompt")
    limit: int | None = option(None, "use only the first N items of each benchmark", min=1)
    n: int = option(1, "samples per item (pass@k and maj@k use k = n)", min=1)
    temperature: float = option(0.0, "sampling temperature (0 = greedy; use > 0 with --n > 1)", min=0.0)
    top_p: float = option(1.0, "nucleus sampling mass", min=0.0, max=1.0)
    max_tokens: int = option(1024, "completion budget per sample (a cut answer counts as truncated and wrong)",
                             min=1)
    seed: int | None = option(0, "sampling seed sent to the backend")
    max_concurrency: int = option(64, "requests in flight per endpoint (lowered adaptively on 429)", min=1)
    timeout: float = option(600.0, "seconds per request")
    max_attempts: int = option(8, "attempts per request for 429/5xx/timeouts/dropped connections", min=1)
    retry_base: float = option(1.0, "first backoff delay in seconds (doubles per attempt, with jitter)")
    retry_max: float = option(60.0, "largest backoff delay in seconds")
    verify_workers: int = option(2, "processes for math verification", min=1)
    price_in: float | None = option(None, "USD per million prompt tokens, for the cost line")
    price_out: float | None = option(None, "USD per million completion tokens, for the cost line")
    progress_seconds: float = option(2.0, "seconds between progress lines (0: none)")
    bootstrap_seed: int = option(0, "seed of the bootstrap intervals")
