"""An OpenAI-compatible server over a local transformers model (starlette + uvicorn).

`/v1/models` and `/v1/chat/completions` (n, temperature, top_p, max_tokens, seed, stop, logprobs);
concurrent requests are batched by `Batcher` into shared `generate` calls. `/v1/completions` serves
scoring only, as on-policy distillation uses it: `echo: true`, `logprobs: 0`, `max_tokens` 0 or 1 and
a prompt of token ids or text; it returns the prompt tokens' log-probs (and one greedy token). For CPUs, small GPUs and tests;
for throughput run `vllm serve`, which the same client talks to. Run: `wb serve MODEL_PATH --port 8000`.
"""

from __future__ import annotations

import threading
import time
import uuid

from distill_data.generation.backends.base import SamplingParams
from distill_data.generation.batcher import Batcher, GenRequest


class BadRequest(ValueError):
    pass


def parse_request(body: object) -> tuple[list[dict], int, SamplingParams]:
    """Validate a chat-completions body; raise BadRequest with an OpenAI-style message."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise BadRequest("`messages` must be a non-empty list of {role, content} objects")
    messages = [{"role": m["role"], "content": str(m.get("content") or "")} for m in messages]
    n = 1 if body.get("n") is None else body["n"]
    if not isinstance(n, int) or not 1 <= n <= 128:
        raise BadRequest("`n` must be an integer from 1 to 128")
    stop = body.get("stop") or ()
    stop = (stop,) if isinstance(stop, str) else tuple(stop)
    try:
        params = SamplingParams(temperature=float(body.get("temperature", 1.0)), top_p=float(body.get("top_p", 1.0)),
                                max_tokens=int(body.get("max_tokens") or body.get("max_completion_tokens") or 256),
                                seed=None if body.get("seed") is None else int(body["seed"]), stop=stop,
                                logprobs=bool(body.get("logprobs")))
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"bad sampling parameter: {exc}") from None
    if params.temperature < 0 or not 0 < params.top_p <= 1 or params.max_tokens < 1:
        raise BadRequest("need temperature >= 0, 0 < top_p <= 1 and max_tokens >= 1")
    return messages, n, params


def build_app(engine, model_name: str, max_batch: int = 16, extra_routes: list | None = None):
    """The starlette app over `engine` (a LocalEngine or anything with `generate_batch`); `extra_routes`
    adds routes (`distill_data.weight_updates.weight_routes` for `--allow-weight-updates`)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    batcher = Batcher(engine.generate_batch, max_batch)

    def error(status: int, message: str, kind: str) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status)

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [
            {"id": model_name, "object": "model", "created": 0, "owned_by": "workbench"}]})

    async def chat(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return error(400, "the body is not valid JSON", "invalid_request_error")
        try:
            messages, n, params = parse_request(body)
            completion = await batcher.submit(GenRequest(messages, n, params))
        except ValueError as exc:
            return error(400, str(exc), "invalid_request_error")
        choices = []
        for i, c in enumerate(completion.choices):
            logprobs = None
            if params.logprobs:
                logprobs = {"content": [{**e, "bytes": None, "top_logprobs": []} for e in c.logprobs or []]}
            choices.append({"index": i, "message": {"role": "assistant", "content": c.content},
                            "finish_reason": c.finish_reason, "logprobs": logprobs})
        return JSONResponse({
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": model_name, "choices": choices,
            "usage": {"prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens,
                      "total_tokens": completion.prompt_tokens + completion.completion_tokens},
            **({"weight_version": completion.extra["weight_version"]} if "weight_version" in completion.extra else {})})

    async def completions(request: Request) -> JSONResponse:
        from starlette.concurrency import run_in_threadpool

        try:
            body = await request.json()
        except ValueError:
            return error(400, "the body is not valid JSON", "invalid_request_error")
        try:
            ids, max_tokens = parse_scoring_request(body, engine.tokenizer)
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

    return Starlette(routes=[Route("/v1/models", models, methods=["GET"]),
                             Route("/v1/chat/completions", chat, methods=["POST"]),
                             Route("/v1/completions", completions, methods=["POST"]), *(extra_routes or [])])


def parse_scoring_request(body: object, tokenizer) -> tuple[list[int], int]:
    """(prompt token ids, max_tokens) of a `/v1/completions` scoring body; BadRequest for anything this
    server does not do (it scores prompts; generation goes through chat completions)."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    if body.get("echo") is not True or body.get("logprobs") is None:
        raise BadRequest("this server's /v1/completions only scores prompts: send echo=true and logprobs=0")
    max_tokens = body.get("max_tokens", 0)
    if max_tokens not in (0, 1):
        raise BadRequest("`max_tokens` must be 0 or 1 for scoring; use /v1/chat/completions to generate")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], list | str):
        prompt = prompt[0]  # a batch of one
    if isinstance(prompt, str) and prompt:
        return list(tokenizer(prompt, add_special_tokens=False)["input_ids"]), max_tokens
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        return prompt, max_tokens
    raise BadRequest("`prompt` must be a non-empty string or list of token ids")


class ServerThread:
    """Run an app with uvicorn on 127.0.0.1 in a background thread (tests, notebooks); `port=0` picks one."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
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
        self.server.should_exit = True
        self.thread.join(10)
