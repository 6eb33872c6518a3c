"""`PrefsConfig`: every option of `wb prefs`, with help text; it is written into the manifest."""

from __future__ import annotations

from dataclasses import dataclass

from distill_data.reasoning import THINK_FORMATS
from workbench.config import option

STRATEGIES = ("delta", "best-vs-worst", "rejection-sampling")
SCORERS = ("auto", "verifier", "judge", "reward-model")


@dataclass
class PrefsConfig:
    prompts: str = option("", "prompt source: a file, a directory, or a run directory", cli=False)
    output: str = option("", "run directory to write (re-running the same command resumes it)")
    strategy: str = option("delta", "how pairs are made", choices=list(STRATEGIES))
    strong_model: str = option("", "the stronger model (chosen side for delta): served name or local path")
    strong_base_url: list[str] = option([], "OpenAI-compatible endpoint(s) of the strong model")
    strong_backend: str = option("openai", "where the strong model runs", choices=["openai", "hf", "vllm"])
    weak_model: str | None = option(None, "the weaker model (rejected side for delta; optional otherwise)")
    weak_base_url: list[str] = option([], "OpenAI-compatible endpoint(s) of the weak model")
    weak_backend: str = option("openai", "where the weak model runs", choices=["openai", "hf", "vllm"])
    api_key_env: str = option("OPENAI_API_KEY", "environment variable holding the API key (may be unset)")
    n: int = option(1, "samples per prompt from each model (delta pairs sample i with sample i)")
    temperature: float = option(0.0, "sampling temperature for both models (0: greedy, as in delta learning)")
    top_p: float = option(1.0, "nucleus sampling")
    max_tokens: int = option(2048, "completion budget per sample")
    seed: int | None = option(None, "sampling seed sent to the backends")
    stop: list[str] = option([], "stop strings")
    system: str | None = option(None, "system prompt prepended to every prompt")
    prompt_field: str | None = option(None, "column holding the prompt (default: `prompt`); e.g. question")
    answer_field: str | None = option(None, "column holding the reference answer (math verification, judge)")
    tests_field: str | None = option(None, "column holding Python test code (code verification)")
    limit: int | None = option(None, "use only the first N prompts")
    verify: str = option("none", "answer verifier", choices=["none", "math", "code", "judge"])
    score: str = option("auto", "how best-vs-worst and rejection-sampling rank samples (auto: the verifier)",
                        choices=list(SCORERS))
    on_inverted: str = option("swap", "a pair whose chosen answer the verifier marks wrong and rejected right",
                              choices=["swap", "drop"])
    reward_model: str | None = option(None, "sequence-classification checkpoint for --score reward-model")
    reward_batch_size: int = option(8, "sequences per reward-model forward pass")
    judge_model: str | None = option(None, "judge model for --verify judge / --score judge (default: strong)")
    judge_base_url: list[str] = option([], "judge endpoint(s) (default: the strong model's)")
    source: str | None = option(None, "value of the `source` column (default: the prompt file's name)")
    max_concurrency: int = option(64, "requests in flight per endpoint (lowered adaptively on 429)")
    timeout: float = option(1800.0, "seconds per request")
    max_attempts: int = option(8, "attempts per request for 429/5xx/timeouts/dropped connections")
    retry_base: float = option(1.0, "first backoff delay in seconds (doubles per attempt, with jitter)")
    retry_max: float = option(60.0, "largest backoff delay in seconds")
    code_timeout: float = option(10.0, "seconds per code-verification run")
    code_memory_mb: int = option(1024, "memory cap per code-verification run")
    verify_workers: int = option(2, "processes for math/code verification")
    think_format: str = option("think-tags", "how reasoning is rendered into the assistant messages",
                               choices=list(THINK_FORMATS))
    price_in: float | None = option(None, "USD per million prompt tokens, for the cost line")
    price_out: float | None = option(None, "USD per million completion tokens, for the cost line")
    progress_seconds: float = option(2.0, "seconds between progress lines (0: none)")
