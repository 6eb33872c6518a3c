"""Options every job that generates through `llm` shares, and how they become an endpoint and a retry policy.

`JobOptions` (prompt columns, endpoint faults, verification, cost, progress) is the base of `wb distill`'s and
`wb prefs`' configs; `endpoint_spec(cfg, model, base_urls)` builds one model's `EndpointSpec` from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm.generator import RetryPolicy
from llm.spec import EndpointSpec, expand_base_urls
from workbench.config import RunOptions, option


@dataclass
class JobOptions(RunOptions):
    prompts: str = option("", "prompt source: a file, a directory, or a run directory", cli=False)
    output: str = option("", "run directory to write (re-running the same command resumes it)")
    api_key_env: str = option("OPENAI_API_KEY", "environment variable holding the API key (may be unset)")
    stop: list[str] = option([], "stop strings")
    system: str | None = option(None, "system prompt prepended to every prompt")
    prompt_field: str | None = option(None, "column holding the prompt (default: `prompt`); e.g. question")
    answer_field: str | None = option(None, "column holding the reference answer (math verification, judge)")
    tests_field: str | None = option(None, "column holding Python test code (code verification)")
    limit: int | None = option(None, "use only the first N prompts", min=1)
    max_concurrency: int = option(64, "requests in flight per endpoint (lowered adaptively on 429 bursts)", min=1)
    min_concurrency: int | None = option(None, "floor of the adaptive limit per endpoint (default: max // 8)",
                                         min=1)
    rpm: float | None = option(None, "requests per minute over all endpoints (your provider's limit)", min=0.01)
    tpm: float | None = option(None, "tokens (prompt + completion) per minute over all endpoints", min=0.01)
    timeout: float = option(1800.0, "seconds per request; reasoning traces can take many minutes", min=0.001)
    max_attempts: int = option(8, "attempts per request for 429/5xx/timeouts/dropped connections", min=1)
    retry_base: float = option(1.0, "first backoff delay in seconds (doubles per attempt, with jitter)", min=0.0)
    retry_max: float = option(60.0, "largest backoff delay in seconds", min=0.0)
    verify: str = option("none", "answer verifier: none, math, exact (the final answer as a string), code, judge",
                         choices=["none", "math", "exact", "code", "judge"])
    code_timeout: float = option(10.0, "seconds per code-verification run", min=0.001)
    code_memory_mb: int = option(1024, "memory cap per code-verification run", min=16)
    verify_workers: int = option(2, "processes for math/code verification", min=1)
    sandbox: str = option("bwrap", "how --verify code confines submitted programs: bwrap (bubblewrap; needs the "
                                   "`bubblewrap` package) or none (unconfined, for trusted code only)",
                          choices=["bwrap", "none"])
    price_in: float | None = option(None, "USD per million prompt tokens, for the cost line", min=0.0)
    price_out: float | None = option(None, "USD per million completion tokens, for the cost line", min=0.0)
    progress_seconds: float = option(2.0, "seconds between progress lines (0: none)", min=0.0)
    decontam: list[str] = option([], "drop prompts sharing an n-gram with these benchmarks before generating "
                                     "(bundled gsm8k, math500, or question/answer files)")
    decontam_ngram: int = option(13, "words per n-gram for --decontam", min=1)
    dedup_prompts: bool = option(False, "drop exact and near-duplicate prompts (MinHash, Jaccard >= 0.8) first")



def endpoint_spec(cfg, model: str, base_urls: list[str], backend: str | None = None) -> EndpointSpec:
    """The `EndpointSpec` of one model of a job built on `JobOptions` (distill, prefs)."""
    return EndpointSpec(model=model, base_urls=expand_base_urls(base_urls), backend=backend or cfg.backend,
                        api_key_env=cfg.api_key_env, timeout=cfg.timeout, max_concurrency=cfg.max_concurrency,
                        min_concurrency=cfg.min_concurrency, rpm=cfg.rpm, tpm=cfg.tpm)


def retry_policy(cfg) -> RetryPolicy:
    return RetryPolicy(cfg.max_attempts, cfg.retry_base, cfg.retry_max)
