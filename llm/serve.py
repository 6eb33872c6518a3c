"""An OpenAI-compatible server over a local transformers model (starlette + uvicorn).

`/v1/models` and `/v1/chat/completions` (n, temperature, top_p, max_tokens, seed, stop, logprobs,
`stream` as server-sent events); concurrent requests share the model through continuous batching
(llm/batcher.py), and each choice reports its own `usage.completion_tokens`. As vLLM does, an unknown `model` is a 404 and a malformed body a 400. Work for a client that went
away is cancelled; past `max_pending` queued samples a request gets 429 with `Retry-After`; `close`
(on SIGTERM) stops all generation so the process exits within seconds. `/v1/completions` serves
scoring only, as on-policy distillation uses it: `echo: true`, `logprobs: 0`, `max_tokens` 0 or 1 and
a prompt of token ids or text; it returns the prompt tokens' log-probs (and one greedy token). Every
route sits behind `llm.http_guard` (JSON only, no cross-origin requests, capped bodies); prompts are
capped before tokenizing (README "Security"). For CPUs, small GPUs and tests;
for throughput run `vllm serve`, which the same client talks to. Run: `wb serve MODEL_PATH --port 8000`.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
import uuid

from llm.backends.base import SamplingParams
from llm.batcher import Batcher, Closing, GenRequest, QueueFull, batcher_for
from llm.http_guard import LOOPBACK_HOSTS, BadRequest, guard, json_body

ROLES = ("system", "developer", "user", "assistant", "tool")
DISCONNECT_POLL_SECONDS = 0.25
MAX_BODY_BYTES = 2 << 20  # `wb serve --max-body-mb`: a prompt at the cap below fits many times over
CHARS_PER_TOKEN = 16  # a prompt over max_prompt_tokens * this many characters cannot fit: refused untokenized
MAX_STOP = 16  # stop strings per request (OpenAI takes 4)
INT64 = (-(2**63), 2**64 - 1)  # what torch.manual_seed takes


def _content(m: dict, i: int) -> str:
    """A message's text: a string, null, or OpenAI's list of {type: text, text} parts."""
    content = m.get("content")
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                         and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    raise BadRequest(f"messages[{i}].content must be a string or a list of text parts")


def _shown(value: object) -> str:
    """A value for an error message: JSON, cut short (a client's 400-digit number is not echoed whole)."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(body: dict, key: str, default: float | None, integer: bool = False,
            bounds: tuple[int, int] = INT64) -> float | int | None:
    """`body[key]` as a float (or an int within `bounds`), `default` when absent or null; BadRequest
    naming `key` for a string, a bool, a non-finite or out-of-range value."""
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"`{key}` must be a number; got {_shown(value)}")
    if isinstance(value, int) and not bounds[0] <= value <= bounds[1]:
        raise BadRequest(f"`{key}` must be from {bounds[0]} to {bounds[1]}; got {_shown(value)}")
    if not math.isfinite(value):
        raise BadRequest(f"`{key}` must be a finite number; got {value}")
    if integer:
        if isinstance(value, float) and not value.is_integer():
            raise BadRequest(f"`{key}` must be an integer; got {value}")
        if not bounds[0] <= value <= bounds[1]:
            raise BadRequest(f"`{key}` must be from {bounds[0]} to {bounds[1]}; got {_shown(value)}")
        return int(value)
    return float(value)


def _flag(body: dict, key: str) -> bool:
    """`body[key]` as a bool (absent or null: False); BadRequest for anything but true/false."""
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise BadRequest(f"`{key}` must be true or false; got {_shown(value)}")
    return bool(value)


def parse_request(body: object, max_prompt_chars: int | None = None) -> tuple[list[dict], int, SamplingParams]:
    """Validate a chat-completions body; raise BadRequest with an OpenAI-style message. A prompt of more
    than `max_prompt_chars` characters is refused here, before anything tokenizes it."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise BadRequest("`messages` must be a non-empty list of {role, content} objects")
    for i, m in enumerate(messages):
        if not isinstance(m.get("role"), str) or m["role"] not in ROLES:
            raise BadRequest(f"messages[{i}].role must be one of {', '.join(ROLES)}; got {_shown(m.get('role'))}")
    messages = [{"role": m["role"], "content": _content(m, i)} for i, m in enumerate(messages)]
    chars = sum(len(m["content"]) for m in messages)
    if max_prompt_chars is not None and chars > max_prompt_chars:
        raise BadRequest(f"`messages` hold {chars:,} characters; this server takes at most {max_prompt_chars:,} "
                         "(see --max-prompt-tokens)")
    n = _number(body, "n", 1, integer=True)
    if not 1 <= n <= 128:
        raise BadRequest("`n` must be an integer from 1 to 128")
    stop = body.get("stop") or ()
    stop = (stop,) if isinstance(stop, str) else stop
    if not isinstance(stop, list | tuple) or not all(isinstance(s, str) and s for s in stop) or len(stop) > MAX_STOP:
        raise BadRequest(f"`stop` must be a non-empty string or a list of at most {MAX_STOP} of them")
    max_tokens = _number(body, "max_tokens", None, integer=True)
    if max_tokens is None:
        max_tokens = _number(body, "max_completion_tokens", 256, integer=True)
    _flag(body, "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise BadRequest(f"`stream_options` must be an object such as {{\"include_usage\": true}}; got {_shown(options)}")
    _flag(options or {}, "include_usage")
    params = SamplingParams(temperature=_number(body, "temperature", 1.0), top_p=_number(body, "top_p", 1.0),
                            max_tokens=max_tokens, seed=_number(body, "seed", None, integer=True), stop=tuple(stop),
                            logprobs=bool(body.get("logprobs")))
    if params.temperature < 0 or not 0 < params.top_p <= 1 or params.max_tokens < 1:
        raise BadRequest("need temperature >= 0, 0 < top_p <= 1 and max_tokens >= 1")
    return messages, n, params


def build_app(engine, model_name: str, max_batch: int = 16, extra_routes: list | None = None,
              max_pending: int | None = 256, max_body_bytes: int = MAX_BODY_BYTES,
              max_prompt_tokens: int | None = None, allowed_hosts: tuple[str, ...] | None = LOOPBACK_HOSTS):
    """The starlette app over `engine` (a LocalEngine or anything with `generate_batch`) behind
    `llm.http_guard.guard` (JSON only, no cross-origin requests, bodies up to `max_body_bytes`; Host
    headers limited to `allowed_hosts`, None for any). Prompts over `max_prompt_tokens` (default: the
    model's context) are refused, longer texts before they are tokenized. `extra_routes` adds routes
    (`llm.weight_updates.weight_routes` for `--allow-weight-updates`). `app.state.batcher` is its batcher
    (call its `close()` to stop all generation before shutting the server down)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    batcher = batcher_for(engine, max_batch, max_pending)
    context = getattr(engine, "max_positions", None)
    max_prompt_tokens = max_prompt_tokens or context
    max_prompt_chars = None if max_prompt_tokens is None else max_prompt_tokens * CHARS_PER_TOKEN

    def error(status: int, message: str, kind: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status,
                            headers=headers)

    def unknown_model(body: object) -> JSONResponse | None:
        name = body.get("model") if isinstance(body, dict) else None
        if name is not None and not isinstance(name, str):
            return error(400, f"`model` must be a string; got {_shown(name)}", "invalid_request_error")
        if name is not None and name != model_name:
            return error(404, f"The model {_shown(name)} does not exist (this server serves `{model_name}`).",
                         "NotFoundError")
        return None

    async def check_prompt_tokens(messages: list[dict]) -> None:
        """BadRequest past a --max-prompt-tokens below the model's context (the engine refuses longer)."""
        if context is None or max_prompt_tokens is None or max_prompt_tokens >= context:
            return
        ids = await run_in_threadpool(engine.tokenizer.apply_chat_template, messages, add_generation_prompt=True,
                                      tokenize=True, return_dict=False)
        if len(ids) > max_prompt_tokens:
            raise BadRequest(f"the prompt has {len(ids):,} tokens; this server takes at most {max_prompt_tokens:,}")

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, exc.detail, "invalid_request_error", exc.headers)

    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        return error(500, "internal server error", "server_error")  # the traceback goes to the log only

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [
            {"id": model_name, "object": "model", "created": 0, "owned_by": "workbench"}]})

    async def generate(request: Request, gen: GenRequest):
        """The completion, or None when the client disconnected first (its work is then cancelled)."""
        task = asyncio.ensure_future(batcher.submit(gen))
        while True:
            done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_SECONDS)
            if done:
                return task.result()
            if await request.is_disconnected():
                gen.cancel.set()
                task.cancel()
                return None

    async def chat(request: Request) -> Response:
        try:
            body = json_body(await request.body())
            missing = unknown_model(body)
            if missing is not None:
                return missing
            messages, n, params = parse_request(body, max_prompt_chars)
            await check_prompt_tokens(messages)
        except BadRequest as exc:
            return error(400, str(exc), "invalid_request_error")
        gen = GenRequest(messages, n, params)
        stream = body.get("stream") is True
        if stream:
            try:  # refuse a full queue with a status code before the 200 of the stream is sent
                batcher.admit(n)
            except QueueFull as exc:
                return error(429, str(exc), "rate_limit_error", {"Retry-After": str(exc.retry_after)})
            except Closing as exc:
                return error(503, str(exc), "server_error")
            include_usage = (body.get("stream_options") or {}).get("include_usage") is True
            return StreamingResponse(_sse(batcher, gen, model_name, include_usage), media_type="text/event-stream")
        try:
            completion = await generate(request, gen)
        except QueueFull as exc:
            return error(429, str(exc), "rate_limit_error", {"Retry-After": str(exc.retry_after)})
        except Closing as exc:
            return error(503, str(exc), "server_error")
        except ValueError as exc:
            return error(400, str(exc), "invalid_request_error")
        if completion is None:
            return Response(status_code=499)  # nobody is listening
        return JSONResponse(_chat_body(completion, params, model_name))

    async def completions(request: Request) -> JSONResponse:
        try:
            body = json_body(await request.body())
        except BadRequest as exc:
            return error(400, str(exc), "invalid_request_error")
        missing = unknown_model(body)
        if missing is not None:
            return missing
        try:
            ids, max_tokens = await run_in_threadpool(parse_scoring_request, body, engine.tokenizer,
                                                      max_prompt_tokens)
            prompt_logps, nxt, nxt_logp = await run_in_threadpool(engine.score, ids)
        except ValueError as exc:
            return error(400, str(exc), "invalid_request_error")
        tokens = ids + [nxt] * max_tokens
        token_logprobs = [None, *prompt_logps] + [nxt_logp] * max_tokens
        decode = engine.tokenizer.decode
        return JSONResponse({
            "id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": model_name,
            "choices": [{"index": 0, "text": decode(tokens), "finish_reason": "length", "logprobs": {
                "tokens": [decode([t]) for t in tokens], "token_logprobs": token_logprobs, "top_logprobs": None,
                "text_offset": None}}],
            "usage": {"prompt_tokens": len(ids), "completion_tokens": max_tokens,
                      "total_tokens": len(ids) + max_tokens}})

    app = Starlette(routes=[Route("/v1/models", models, methods=["GET"]),
                            Route("/v1/chat/completions", chat, methods=["POST"]),
                            Route("/v1/completions", completions, methods=["POST"]), *(extra_routes or [])],
                    exception_handlers={HTTPException: http_error, Exception: server_error})
    app.state.batcher = batcher
    return guard(app, max_body_bytes, allowed_hosts)


def _chat_body(completion, params: SamplingParams, model_name: str) -> dict:
    choices = []
    for i, c in enumerate(completion.choices):
        logprobs = None
        if params.logprobs:
            logprobs = {"content": [{**e, "bytes": None, "top_logprobs": []} for e in c.logprobs or []]}
        choices.append({"index": i, "message": {"role": "assistant", "content": c.content},
                        "finish_reason": c.finish_reason, "logprobs": logprobs,
                        "usage": {"completion_tokens": c.completion_tokens}})  # exact per sample (n > 1)
    version = {"weight_version": completion.extra["weight_version"]} if "weight_version" in completion.extra else {}
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": model_name, "choices": choices, "usage": _usage(completion), **version}


def _usage(completion) -> dict:
    return {"prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens,
            "total_tokens": completion.prompt_tokens + completion.completion_tokens}


async def _sse(batcher: Batcher, gen: GenRequest, model_name: str, include_usage: bool):
    """`chat.completion.chunk` events as OpenAI streams them: per choice a role chunk, the content, and a
    finish chunk; then usage (if asked) and `[DONE]`. The text is sent once generated (the batcher runs
    whole batches); starlette cancels this generator when the client disconnects, which cancels the work."""
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model_name}

    def event(payload: dict) -> str:
        return f"data: {json.dumps(payload)}\n\n"

    try:
        completion = await batcher.submit(gen)
    except (QueueFull, Closing, ValueError) as exc:
        yield event({"error": {"message": str(exc), "type": "server_error"}})
        return
    for i, c in enumerate(completion.choices):
        yield event({**head, "choices": [{"index": i, "delta": {"role": "assistant", "content": ""},
                                          "logprobs": None, "finish_reason": None}]})
        logprobs = None
        if gen.params.logprobs:
            logprobs = {"content": [{**e, "bytes": None, "top_logprobs": []} for e in c.logprobs or []]}
        yield event({**head, "choices": [{"index": i, "delta": {"content": c.content}, "logprobs": logprobs,
                                          "finish_reason": None}]})
        yield event({**head, "choices": [{"index": i, "delta": {}, "logprobs": None,
                                          "finish_reason": c.finish_reason}]})
    if include_usage:
        yield event({**head, "choices": [], "usage": _usage(completion)})
    yield "data: [DONE]\n\n"


def parse_scoring_request(body: object, tokenizer, max_prompt_tokens: int | None = None) -> tuple[list[int], int]:
    """(prompt token ids, max_tokens) of a `/v1/completions` scoring body; BadRequest for anything this
    server does not do (it scores prompts; generation goes through chat completions), for token ids outside
    the vocabulary and for prompts over `max_prompt_tokens` (a text is measured before it is tokenized)."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    logprobs = body.get("logprobs")
    if body.get("echo") is not True or logprobs is None:
        raise BadRequest("this server's /v1/completions only scores prompts: send echo=true and logprobs=0")
    if isinstance(logprobs, bool) or not isinstance(logprobs, int) or not 0 <= logprobs <= 20:
        raise BadRequest(f"`logprobs` must be an integer from 0 to 20; got {_shown(logprobs)}")
    max_tokens = body.get("max_tokens", 0)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens not in (0, 1):
        raise BadRequest(f"`max_tokens` must be 0 or 1 for scoring (got {_shown(max_tokens)}); use "
                         "/v1/chat/completions to generate")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], list | str):
        prompt = prompt[0]  # a batch of one
    limit = max_prompt_tokens or math.inf
    if isinstance(prompt, str) and prompt:
        if len(prompt) > limit * CHARS_PER_TOKEN:
            raise BadRequest(f"`prompt` has {len(prompt):,} characters; this server takes at most "
                             f"{limit * CHARS_PER_TOKEN:,} (see --max-prompt-tokens)")
        ids = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    elif isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        vocab = len(tokenizer)
        bad = next((t for t in prompt if not 0 <= t < vocab), None)
        if bad is not None:
            raise BadRequest(f"`prompt` token ids must be from 0 to {vocab - 1}; got {_shown(bad)}")
        ids = prompt
    else:
        raise BadRequest("`prompt` must be a non-empty string or list of token ids")
    if len(ids) > limit:
        raise BadRequest(f"`prompt` has {len(ids):,} tokens; this server takes at most {limit:,}")
    return ids, max_tokens


class ServerThread:
    """Run an app with uvicorn on 127.0.0.1 in a background thread (tests, notebooks); `port=0` picks one."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off",
                                                    timeout_graceful_shutdown=GRACE_SECONDS))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, timeout: float = 30.0) -> str:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}/v1"

    def stop(self) -> None:
        close_app(self.app)
        self.server.should_exit = True
        self.thread.join(10)


GRACE_SECONDS = 3  # how long a shutdown waits for open connections after generation was stopped


def close_app(app) -> None:
    """Stop every queued and running generation of an app from `build_app` (before a shutdown)."""
    batcher = getattr(getattr(app, "state", None), "batcher", None)
    if batcher is not None:
        batcher.close()
