"""The endpoint options every command that calls a model takes, the one builder of its endpoint, and the
options every generation job (distill, prefs) shares.

`EndpointOptions` (API key, concurrency, rate budget, timeout, retries, prices) is composed into every
command that calls a model: distill, prefs, eval, select's difficulty rater, the on-policy distillation
teacher. Each model a command calls is named by a model field and, through `base_url_option` and
`backend_option`, its endpoints and backend; `endpoint_spec` and `retry_policy` turn them into the
`EndpointSpec` and `RetryPolicy` the generation layer opens. `JobOptions` adds prompts, verification,
progress, the cost cap (`--max-cost`, `cost_cap`) and the response cache (`--no-cache`) for `wb distill` and `wb prefs`; `wb eval`
declares the last two itself.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from llm.backends.openai_batch import BatchLimits
from llm.budget import CostCap, token_cost
from llm.generator import RetryPolicy
from llm.runtime import dtype_option, threads_option
from llm.spec import BACKENDS, HTTP_BACKENDS, EndpointSpec, expand_base_urls
from workbench.config import RunOptions, option
from workbench.errors import InputError

AUTO = "auto"  # the backend a model's endpoints imply: openai with a base URL, hf without


def base_url_option(whose: str) -> Any:
    """The field of a model's OpenAI-compatible endpoints (`whose`: "the model", "the judge", ...)."""
    return option([], f"OpenAI-compatible endpoint(s) of {whose}, repeated or a file of URLs; requests go to the "
                      "least-loaded healthy one")


def backend_option(whose: str) -> Any:
    """The field of where a model runs; `auto` decides from its base URL (see `endpoint_spec`)."""
    return option(AUTO, f"where {whose} runs: openai (HTTP), openai-batch (the provider's batch API: half price, "
                        "within 24 h), hf or vllm (in-process); auto: openai with a base URL, else hf on a local "
                        "model directory", choices=[AUTO, *BACKENDS])


def max_cost_option() -> Any:
    """The field of a generation command's cost cap (`CostCap`): distill, prefs and eval declare it."""
    return option(None, "stop cleanly once the run's cost (its ledger, at --price-in/--price-out) reaches this many "
                        "USD; raise it and re-run the same command to continue", min=0.0)


def cache_option() -> Any:
    """The field of the workspace's response cache (`llm.cache`); `--no-cache` turns it off for one run."""
    return option(True, "answer a request seen before from the response cache ($WB_HOME/cache) at no cost; "
                        "--no-cache requests (and pays for) every sample again")


@dataclass
class EndpointOptions:
    """How a command reaches every model it calls; one set of defaults for all of them (and their judges)."""

    api_key_env: str = option("OPENAI_API_KEY", "environment variable holding the API key (may be unset)")
    max_concurrency: int = option(64, "requests in flight per endpoint (lowered adaptively on 429 bursts); a "
                                      "vLLM server batches this many well", min=1)
    min_concurrency: int | None = option(None, "floor of the adaptive limit per endpoint (default: max // 8)",
                                         min=1)
    rpm: float | None = option(None, "requests per minute over all endpoints (your provider's limit)", min=0.01)
    tpm: float | None = option(None, "tokens (prompt + completion) per minute over all endpoints", min=0.01)
    timeout: float = option(1800.0, "seconds per request; a reasoning trace of 16-32k tokens can take many "
                                    "minutes", min=0.001)
    max_attempts: int = option(8, "attempts per request for 429/5xx/timeouts/dropped connections; 8 with the "
                                  "1-60 s backoff ride out about 2 minutes of outage (a server restart)", min=1)
    retry_base: float = option(1.0, "first backoff delay in seconds (doubles per attempt, with jitter)", min=0.0)
    retry_max: float = option(60.0, "largest backoff delay in seconds", min=0.0)
    price_in: float | None = option(None, "USD per million prompt tokens the endpoints read, for the cost",
                                    min=0.0)
    price_out: float | None = option(None, "USD per million completion tokens, for the cost", min=0.0)
    dtype: str = dtype_option()
    threads: int = threads_option()
    batch_max_requests: int = option(BatchLimits.max_requests, "openai-batch: requests per batch (OpenAI's "
                                                               "limit: 50,000)", min=1)
    batch_max_bytes: int = option(BatchLimits.max_bytes, "openai-batch: bytes per batch input file (OpenAI's limit: "
                                                         "200 MB)", min=1024)
    batch_inflight: int = option(BatchLimits.inflight, "openai-batch: requests held in submitted batches at once (a "
                                                       "provider also caps the tokens it queues per model)", min=1)
    batch_poll_seconds: float = option(BatchLimits.poll_seconds, "openai-batch: seconds between polls of a batch's "
                                                                 "status", min=0.001)
    batch_discount: float = option(0.5, "openai-batch: the batch price as a share of --price-in/--price-out "
                                        "(OpenAI: 0.5; 1 when the prices given are batch prices)", min=0.0)


ENDPOINT_OPTIONS = tuple(f.name for f in dataclasses.fields(EndpointOptions))  # may change when a run resumes


def endpoint_spec(options: EndpointOptions, model: str, base_url: list[str] | tuple[str, ...],
                  backend: str = AUTO, role: str = "", like: EndpointSpec | None = None) -> EndpointSpec:
    """The `EndpointSpec` of one model a command calls: `model` on `base_url` through `backend`, reached
    with the command's shared `options`. `role` is the prefix of the model's own flags (`judge` for
    `--judge-model`, `--judge-base-url`, `--judge-backend`), for error messages. With `like` (the command's
    main model), what the role leaves unset comes from it: the model name, and the endpoints with their
    backend unless the role names endpoints of its own.

    Backend `auto` is openai (HTTP) with a base URL and hf without one. Raises `InputError` for an in-process
    backend given a base URL, openai without one, or hf on a model that is not a local directory."""
    flag = f"--{role}-" if role else "--"
    urls = expand_base_urls(base_url, f"{flag}base-url")
    if like is not None:
        model = model or like.model
        if not urls:
            backend = like.backend if backend == AUTO else backend
            urls = like.base_urls if backend in HTTP_BACKENDS else ()
    if not model:
        raise InputError(f"{flag}model is required (a served model name, or a local model directory)")
    if backend == AUTO:
        backend = "openai" if urls else "hf"
    elif backend not in HTTP_BACKENDS and urls:
        raise InputError(f"{flag}backend {backend} runs the model in-process and takes no {flag}base-url: drop "
                         f"{flag}backend to call the endpoint over HTTP, or drop {flag}base-url")
    elif backend in HTTP_BACKENDS and not urls:
        raise InputError(f"{flag}backend {backend} needs at least one {flag}base-url (e.g. http://localhost:8000/v1)")
    if backend == "hf" and not os.path.exists(model):  # vllm may also take a hub name
        raise InputError(f"{flag}model {model!r}: not a local model directory; to call a served model give "
                         f"{flag}base-url (e.g. http://localhost:8000/v1)")
    if backend == "hf" and not os.path.isfile(os.path.join(model, "config.json")):
        what = "a file" if os.path.isfile(model) else "a directory without config.json"
        raise InputError(f"{flag}model {model!r}: is {what}, not a transformers model directory (config.json and "
                         "weights, as `save_pretrained` writes)")
    batch = None
    if backend == "openai-batch":
        batch = BatchLimits(options.batch_max_requests, options.batch_max_bytes, options.batch_inflight,
                            options.batch_poll_seconds, options.max_attempts, options.retry_base, options.retry_max)
    return EndpointSpec(model, urls, backend, options.api_key_env, options.timeout, options.max_concurrency,
                        options.min_concurrency, options.rpm, options.tpm, options.dtype, options.threads, batch)


def unit_prices(options: EndpointOptions, spec: EndpointSpec) -> dict[str, float | None]:
    """`price_in` and `price_out` (USD per million tokens) of the units generated through `spec`: the given
    prices, times `--batch-discount` for the openai-batch backend."""
    scale = options.batch_discount if spec.backend == "openai-batch" else 1.0
    return {"price_in": None if options.price_in is None else options.price_in * scale,
            "price_out": None if options.price_out is None else options.price_out * scale}


def check_max_cost(options: EndpointOptions, max_cost: float | None) -> None:
    """Raise `InputError` for a `--max-cost` that cannot be counted: no price to count it with."""
    if max_cost is not None and options.price_in is None and options.price_out is None:
        raise InputError(f"--max-cost {max_cost:g} needs --price-in and/or --price-out (USD per million tokens) to "
                         "count what the run spends")


def batch_prices(options: EndpointOptions) -> tuple[float | None, float | None]:
    """(in, out) USD per million tokens of what a provider's batch API answered: the prices times
    `--batch-discount` (`run_usage` prices the ledger's batch tokens with them)."""
    scale = options.batch_discount
    return (None if options.price_in is None else options.price_in * scale,
            None if options.price_out is None else options.price_out * scale)


def cost_cap(options: EndpointOptions, max_cost: float | None, paid: tuple[int, int, int],
             spec: EndpointSpec | None = None) -> CostCap:
    """The run's `CostCap` at the prices of its units (`unit_prices`: batch-discounted for openai-batch),
    having spent what its ledger already records as `paid` (requests, prefill tokens, sampled tokens:
    `Ledger.usage`, summed over the run's ledgers)."""
    check_max_cost(options, max_cost)
    prices = unit_prices(options, spec) if spec is not None else {"price_in": options.price_in,
                                                                   "price_out": options.price_out}
    spent = token_cost(paid[1], paid[2], prices["price_in"], prices["price_out"]) or 0.0
    return CostCap(max_cost, prices["price_in"], prices["price_out"], spent)


def retry_policy(options: EndpointOptions) -> RetryPolicy:
    """The retry policy of every request a command sends (`--max-attempts`, `--retry-base`, `--retry-max`)."""
    return RetryPolicy(options.max_attempts, options.retry_base, options.retry_max)


@dataclass
class JobOptions(EndpointOptions, RunOptions):
    """The options of a generation job (distill, prefs) beyond its models: prompts, verification, progress."""

    prompts: str = option("", "prompt source: a file, a directory, or a run directory", cli=False)
    output: str = option("", "run directory to write (re-running the same command resumes it)")
    stop: list[str] = option([], "stop strings")
    system: str | None = option(None, "system prompt prepended to every prompt")
    prompt_field: str | None = option(None, "column holding the prompt (default: `prompt`); e.g. question")
    answer_field: str | None = option(None, "column holding the reference answer (math verification, judge)")
    tests_field: str | None = option(None, "column holding Python test code (code verification)")
    limit: int | None = option(None, "use only the first N prompts", min=1)
    verify: str = option("none", "answer verifier: none, math, exact (the final answer as a string), code, judge",
                         choices=["none", "math", "exact", "code", "judge"])
    code_timeout: float = option(10.0, "seconds per code-verification run", min=0.001)
    code_memory_mb: int = option(1024, "memory cap per code-verification run", min=16)
    verify_workers: int = option(2, "processes for math/code verification", min=1)
    sandbox: str = option("bwrap", "how --verify code confines submitted programs: bwrap (bubblewrap; needs the "
                                   "`bubblewrap` package) or none (unconfined, for trusted code only)",
                          choices=["bwrap", "none"])
    progress_seconds: float = option(2.0, "seconds between progress lines (0: none)", min=0.0)
    decontam: list[str] = option([], "drop prompts sharing an n-gram with these benchmarks before generating "
                                     "(bundled gsm8k, math500, or question/answer files)")
    decontam_ngram: int = option(13, "words per n-gram for --decontam", min=1)
    dedup_prompts: bool = option(False, "drop exact and near-duplicate prompts (MinHash, Jaccard >= 0.8) first")
    max_cost: float | None = max_cost_option()
    cache: bool = cache_option()
