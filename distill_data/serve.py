"""An OpenAI-compatible server over a local transformers model (starlette + uvicorn).

`/v1/models` and `/v1/chat/completions` (n, temperature, top_p, max_tokens, seed, stop, logprobs);
concurrent requests are batched by `Batcher` into shared `generate` calls. For CPUs, small GPUs and tests;
for throughput run `vllm serve`, which the same client talks to. Run: `wb serve MODEL_PATH --port 8000`.
"""

from __future__ import annotations

import threading
import time
import uuid

from distill_data.backends.base import SamplingParams
from distill_data.batcher import Batcher, GenRequest


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


def build_app(engine, model_name: str, max_batch: int = 16):
    """The starlette app over `engine` (a LocalEngine or anything with `generate_batch`)."""
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
                      "total_tokens": completion.prompt_tokens + completion.completion_tokens}})

    return Starlette(routes=[Route("/v1/models", models, methods=["GET"]),
                             Route("/v1/chat/completions", chat, methods=["POST"])])


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
