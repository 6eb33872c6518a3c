"""Endpoint specs: what a job needs to say about one model to generate from it, and `open_generator`.

An `EndpointSpec` names the model, where it runs (OpenAI-compatible URLs, in-process transformers or
vLLM), the API-key environment variable, the timeout, the concurrency per endpoint (and its floor) and
the job's requests/tokens-per-minute budget. Every job that generates (distill, prefs, judges, eval,
select's rater, on-policy distillation) builds its specs with `llm.options.endpoint_spec` and opens its
generator from a spec instead of passing a whole command config around.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

from llm.backends.base import SamplingParams
from llm.backends.openai_batch import BatchLimits
from llm.budget import CostCap, RateBudget
from llm.cache import CacheView, ResponseCache, model_identity
from llm.generator import Endpoint, Generator, RetryPolicy
from workbench.errors import InputError

BACKENDS = ("openai", "openai-batch", "hf", "vllm")
HTTP_BACKENDS = ("openai", "openai-batch")  # the ones that take base URLs


@dataclass(frozen=True)
class EndpointSpec:
    """One model to generate from. `base_urls` are used by the `openai` backend only. Commands build it with
    `llm.options.endpoint_spec`, which holds the defaults of every field."""

    model: str
    base_urls: tuple[str, ...]
    backend: str
    api_key_env: str
    timeout: float
    max_concurrency: int
    min_concurrency: int | None  # the floor of the adaptive limit (None: max_concurrency // 8)
    rpm: float | None  # requests per minute over all endpoints (a provider's published limit)
    tpm: float | None  # tokens (prompt + completion) per minute over all endpoints
    dtype: str = "auto"  # in-process backends: weights dtype (llm.runtime.resolve_dtype)
    threads: int = 0  # in-process backends: torch CPU threads (0 = llm.runtime.default_threads)
    batch: BatchLimits | None = None  # openai-batch: how requests are cut into batches and polled

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise InputError(f"backend {self.backend!r}: must be one of {', '.join(BACKENDS)}")
        if not self.model:
            raise InputError("a model name (or local model path) is required")
        if self.backend in HTTP_BACKENDS and not self.base_urls:
            raise InputError(f"the {self.backend} backend needs at least one base URL (e.g. http://localhost:8000/v1)")
        if self.backend == "openai-batch" and len(self.base_urls) > 1:
            raise InputError("the openai-batch backend submits to one provider: give one base URL (a resumed run "
                             "polls its batches there)")
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise InputError(f"--{name} must be a positive number, got {value}")
        if self.min_concurrency is not None and not 1 <= self.min_concurrency <= self.max_concurrency:
            raise InputError(f"--min-concurrency must be between 1 and --max-concurrency "
                             f"({self.max_concurrency}), got {self.min_concurrency}")


def open_endpoints(spec: EndpointSpec) -> tuple[list[Endpoint], str]:
    """The endpoints of `spec` and a template id for run keys ("server-side" over HTTP, where the server
    renders the chat template; the template's hash for in-process backends)."""
    if spec.backend == "openai":
        from llm.backends.openai_http import OpenAIBackend

        key = os.environ.get(spec.api_key_env)
        pool = max(100, spec.max_concurrency)
        backends = [OpenAIBackend(u, spec.model, key, spec.timeout, pool) for u in spec.base_urls]
        return [Endpoint(b, spec.max_concurrency, spec.min_concurrency) for b in backends], "server-side"
    if spec.backend == "openai-batch":
        from llm.backends.openai_batch import OpenAIBatchBackend

        limits = spec.batch or BatchLimits()
        batch = OpenAIBatchBackend(spec.base_urls[0], spec.model, os.environ.get(spec.api_key_env), spec.timeout,
                                   limits)
        # every request waits in a batch: the endpoint's concurrency is how many requests batches hold at once
        return [Endpoint(batch, limits.inflight, limits.inflight)], "server-side"
    if spec.backend == "hf":
        from llm.backends.hf_local import HFBackend

        backend = HFBackend(spec.model, max_batch=spec.max_concurrency, dtype=spec.dtype, threads=spec.threads)
    else:
        from llm.backends.vllm_local import VLLMBackend

        backend = VLLMBackend(spec.model, max_batch=spec.max_concurrency)
    return [Endpoint(backend, spec.max_concurrency)], backend.template_id


def open_generator(spec: EndpointSpec, sampling: SamplingParams, retry: RetryPolicy, seed: int = 0,
                   cache: ResponseCache | None = None, cap: CostCap | None = None) -> tuple[Generator, str]:
    """A `Generator` over `spec`'s endpoints with default `sampling` and the `retry` policy, and the
    template id that belongs in a run key. With `cache` it answers requests seen before from it (see
    `llm.cache`); with `cap` it starts no request once the run's cost reaches it. Close it with
    `await generator.aclose()`."""
    endpoints, template_id = open_endpoints(spec)
    view = None
    if cache is not None:
        # answers from a server count only for that server (a batch API's are its own: "batch:<url>")
        origins = tuple(e.backend.name for e in endpoints) if spec.backend in HTTP_BACKENDS else ("local",)
        view = CacheView(cache, model_identity(spec.model, spec.backend, template_id), origins)
    return Generator(endpoints, sampling, retry, seed, RateBudget(spec.rpm, spec.tpm), view, cap), template_id


def expand_base_urls(values: list[str] | tuple[str, ...], flag: str = "--base-url") -> tuple[str, ...]:
    """`--base-url` values (`flag` names the option in errors) as URLs: each is a URL, or a file of them
    (one per line, `#` comments), in order without repeats. A value that is neither raises `InputError`."""
    urls: list[str] = []
    for value in values:
        if "://" in value:
            urls.append(value)
            continue
        if not os.path.isfile(value):
            raise InputError(f"{flag} {value!r}: not a URL (http://host:port/v1) nor a file of URLs")
        with open(value, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.split("#", 1)[0].strip()
                if not line:
                    continue
                if "://" not in line:
                    raise InputError(f"{value}:{lineno}: {line!r} is not a URL (http://host:port/v1)")
                urls.append(line)
        if not urls:
            raise InputError(f"{flag} {value}: the file lists no endpoints")
    return tuple(dict.fromkeys(urls))


def run_key(spec: EndpointSpec, sampling: SamplingParams, template_id: str) -> str:
    """The key of a run's units: model, backend kind, sampling and template. Endpoints, concurrency and
    retry settings are left out on purpose, so changing them resumes the same units."""
    # a batch runs the same requests as the online API, so switching between them resumes the same units
    parts = {"model": spec.model, "backend": "http" if spec.backend in HTTP_BACKENDS else "local",
             "sampling": sampling.key(), "template": template_id}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
