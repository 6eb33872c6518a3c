"""OpenAI-compatible HTTP backend over the `openai` async client (vLLM/SGLang servers, OpenAI, DeepSeek...).

The client's own retries are off (the runner retries with its policy); the default timeout is 30 minutes
because reasoning traces can take that long. Reasoning comes from `reasoning_content` or `reasoning`.
Completion tokens per sample are exact where the server gives them (`wb serve`'s per-choice `usage`, one
log-prob entry per token, or n = 1), else counted with the model's tokenizer when one loads offline (a
local directory or the hub cache), else the request's total split evenly and marked `tokens_estimated`.
"""

from __future__ import annotations

from llm.backends.base import (
    Choice,
    Completion,
    PermanentError,
    SamplingParams,
    TransientError,
)


def _retry_after(headers) -> float | None:
    if headers is None:
        return None
    for name in ("retry-after-ms", "retry-after"):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value)
        except ValueError:
            return None  # an HTTP date: fall back to our own backoff
        return seconds / 1000 if name == "retry-after-ms" else seconds
    return None


class OpenAIBackend:
    """One endpoint. `native_n`: one request asks for n samples (OpenAI and vLLM honour `n`)."""

    native_n = True

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 1800.0,
                 max_connections: int = 1024):
        import openai

        self.name = base_url
        self.model = model
        self._openai = openai
        # The default pool holds 100 connections; high concurrency needs more (throughput, not the key).
        http = openai.DefaultAsyncHttpxClient(limits=_limits(max_connections))
        self.client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key or "EMPTY", timeout=timeout,
                                         max_retries=0, http_client=http)

    async def chat(self, messages: list[dict], n: int, params: SamplingParams) -> Completion:
        request = self.client.chat.completions.create(**chat_body(self.model, messages, n, params))
        return self._counted(_completion(await self._call(request)))

    def _counted(self, completion: Completion) -> Completion:
        """`completion` with estimated per-sample token counts replaced by the tokenizer's, when it loads."""
        if any(c.tokens_estimated for c in completion.choices):
            tokenizer = self._tokenizer()
            if tokenizer is not None:
                for c in completion.choices:
                    c.completion_tokens = count_tokens(tokenizer, c)
                    c.tokens_estimated = False
        return completion

    def _tokenizer(self):
        """The served model's tokenizer if it loads offline (a local directory or the hub cache), else None;
        tried once."""
        if not hasattr(self, "_tok"):
            self._tok = None
            try:
                from transformers import AutoTokenizer

                self._tok = AutoTokenizer.from_pretrained(self.model, local_files_only=True)
            except Exception:  # noqa: BLE001 - no tokenizer here: counts stay marked as estimates
                pass
        return self._tok

    async def prompt_logprobs(self, token_ids: list[int]) -> tuple[list[float | None], int]:
        """(log-prob of each prompt token given the ones before it, None for the first; prompt tokens), by
        `/completions` with `echo` and `logprobs: 0`, as vLLM and `wb serve` answer it."""
        response = await self._call(self.client.completions.create(
            model=self.model, prompt=token_ids, max_tokens=1, echo=True, logprobs=0, temperature=1.0))
        try:
            logps = list(response.choices[0].logprobs.token_logprobs)[: len(token_ids)]
        except (AttributeError, IndexError, TypeError) as exc:
            raise PermanentError(f"the server did not echo prompt log-probs ({type(exc).__name__}: {exc})") from None
        if len(logps) < len(token_ids):
            raise PermanentError(f"the server echoed {len(logps)} log-probs for {len(token_ids)} prompt tokens")
        usage = response.usage
        return logps, usage.prompt_tokens if usage else len(token_ids)

    async def _call(self, request):
        """Await an openai request, mapping its errors to the runner's transient and permanent kinds."""
        openai = self._openai
        try:
            return await request
        except openai.RateLimitError as exc:
            raise TransientError(f"429: {_message(exc)}", _retry_after(exc.response.headers), True) from None
        except openai.APIStatusError as exc:
            if exc.status_code >= 500 or exc.status_code in (408, 409):
                raise TransientError(f"{exc.status_code}: {_message(exc)}", _retry_after(exc.response.headers)) from None
            raise PermanentError(f"{exc.status_code}: {_message(exc)}") from None
        except openai.APITimeoutError:
            raise TransientError("timeout") from None
        except openai.APIConnectionError as exc:
            raise TransientError(f"connection error: {exc.__cause__ or exc}") from None
        except openai.APIResponseValidationError as exc:
            raise TransientError(f"malformed response: {exc}") from None

    async def aclose(self) -> None:
        await self.client.close()


def chat_body(model: str, messages: list[dict], n: int, params: SamplingParams) -> dict:
    """The body of a `/v1/chat/completions` request (online, or one line of a batch input file)."""
    body: dict = {"model": model, "messages": messages, "n": n, "temperature": params.temperature,
                  "top_p": params.top_p, "max_tokens": params.max_tokens}
    if params.seed is not None:
        body["seed"] = params.seed
    if params.stop:
        body["stop"] = list(params.stop)
    if params.logprobs:
        body["logprobs"] = True
    return body


def _limits(max_connections: int):
    try:  # openai >= 3 ships on httpx2; older releases on httpx
        import httpx2 as httpx
    except ImportError:
        import httpx
    return httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)


def _message(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)
    return str(getattr(exc, "message", exc))


def _completion(response) -> Completion:
    choices = []
    for c in sorted(response.choices or [], key=lambda c: c.index):
        msg = c.message
        extra = getattr(msg, "model_extra", None) or {}
        reasoning = extra.get("reasoning_content") or extra.get("reasoning")
        logprobs = None
        if c.logprobs is not None and c.logprobs.content is not None:
            logprobs = [{"token": t.token, "logprob": t.logprob} for t in c.logprobs.content]
        choices.append(Choice(msg.content, reasoning, c.finish_reason, 0, logprobs))
    usage = response.usage
    prompt_tokens = usage.prompt_tokens if usage else 0
    completion_tokens = usage.completion_tokens if usage else 0
    exact = [_exact_tokens(c, len(choices), completion_tokens) for c in sorted(response.choices or [],
                                                                              key=lambda c: c.index)]
    if None in exact:  # the server reports only the request's total: split it evenly, marked as an estimate
        share, rest = divmod(completion_tokens, len(choices))
        for j, c in enumerate(choices):
            c.completion_tokens, c.tokens_estimated = share + (1 if j < rest else 0), True
    else:
        for c, k in zip(choices, exact, strict=True):
            c.completion_tokens = k
    return Completion(choices, prompt_tokens, completion_tokens)


def _exact_tokens(choice, n: int, total: int) -> int | None:
    """One choice's completion tokens when the response tells them exactly, else None."""
    extra = getattr(choice, "model_extra", None) or {}
    usage = extra.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
        return usage["completion_tokens"]  # wb serve's per-choice usage
    if n == 1:
        return total
    if choice.logprobs is not None and choice.logprobs.content is not None:
        return len(choice.logprobs.content)  # one entry per generated token
    return None


def count_tokens(tokenizer, choice: Choice) -> int:
    """A sample's completion tokens counted with the model's tokenizer (reasoning and content; a sample that
    ended at EOS generated one more token, the EOS, which the text does not show)."""
    text = (choice.reasoning or "") + (choice.content or "")
    tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return tokens + (1 if choice.finish_reason == "stop" else 0)
