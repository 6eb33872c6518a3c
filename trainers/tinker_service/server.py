"""`wb tinker serve`: a local service that speaks Tinker's HTTP API, so the official `tinker` SDK and
tinker-cookbook loops run unchanged against one machine, with every token metered.

    wb tinker serve --base-model PATH --port 8000 --output runs/tinker
    TINKER_BASE_URL=http://127.0.0.1:8000 TINKER_API_KEY=tml-local python my_loop.py

Routes live under /api/v1 (see the SDK's `resources/`). Work-bearing requests return a future handle at
once and run on the scheduler's worker (futures.py); `retrieve_future` long-polls the result. Errors are
failed futures with a category, never HTTP 402 (the SDK would pause for an hour) and, for user errors,
never 5xx/429 (it would retry for minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from llm.runtime import dtype_option, loaded_models, threads_option
from trainers.tinker_service.futures import Future, FutureTable, Job, Scheduler
from trainers.tinker_service.protocol import (
    PROTO_CONTENT_TYPE,
    RequestError,
    decode_forward_backward,
    prompt_tokens,
)
from workbench.config import option
from workbench.errors import InputError

log = logging.getLogger("wb.tinker")


@dataclass
class ServeConfig:
    base_model: str = option(None, "model to serve: a local transformers directory (or a hub id when online)")
    host: str = option("127.0.0.1", "address to bind")
    port: int = option(8000, "port to listen on", min=1, max=65535)
    served_name: str | None = option(None, "base_model name clients send (default: --base-model as given)")
    api_key: str | None = option(None, "require this X-API-Key (default: accept any key)")
    output: str | None = option(None, "run directory for checkpoints, usage.json and the manifest "
                                      "(default: $WB_HOME/runs/tinker-serve-TIMESTAMP)")
    prices: str | None = option(None, "YAML with prefill, sample, train: USD per million tokens")
    token_budget: int | None = option(None, "tokens (prefill + sampled + trained) each session may use", min=1)
    chunk_len: int = option(1024, "datums per forward_backward chunk the SDK is told to send", min=1)
    compress: bool = option(True, "ask the SDK to zstd-compress forward_backward bodies")
    micro_batch_tokens: int = option(8192, "padded tokens per forward pass inside a request", min=1)
    device: str | None = option(None, "torch device (default: cuda when available, else cpu)")
    dtype: str = dtype_option()
    threads: int = threads_option()
    poll_seconds: float = option(20.0, "how long retrieve_future waits for a result before try_again", min=0.0)
    session_timeout: float = option(600.0, "seconds without a heartbeat after which a session ends and its "
                                           "adapters are freed (the SDK beats every 10 s)", min=1.0)


class Service:
    """The state behind the routes: sessions, futures, the scheduler, the engine and the meter."""

    def __init__(self, config: ServeConfig, engine, meter):
        self.config = config
        self.engine = engine
        self.meter = meter
        self.futures = FutureTable()
        self.scheduler = Scheduler(self.futures, on_idle=self.housekeeping)
        self.sessions: dict[str, dict] = {}

    def session(self, session_id: str | None) -> str:
        if session_id not in self.sessions:
            raise RequestError(f"unknown session_id {session_id!r}; the SDK creates one with create_session")
        if self.sessions[session_id]["finished"]:
            raise RequestError(f"session {session_id} has finished")
        return session_id

    def submit(self, session_id: str | None, lane: str, seq: int | None, run, proto: bool = False,
               new_model: bool = False, **extra) -> dict:
        """Queue `run()` (-> payload) as a future on `lane`; return the handle the SDK expects. Requests on
        an existing model carry its session (None for an unknown model: the engine names the model)."""
        fut = self.futures.create(session_id)

        def job():
            if new_model or session_id is not None:
                self.session(session_id)
            return run(), proto

        self.scheduler.submit(Job(lane, seq or None, job, fut))
        return {"request_id": fut.request_id, **extra}

    def housekeeping(self) -> None:
        """On the idle worker: end sessions whose client stopped beating (freeing their adapters), flush usage."""
        now = time.time()
        for sid, s in list(self.sessions.items()):
            if not s["finished"] and now - s["heartbeat"] > self.config.session_timeout:
                s["finished"] = True
                log.warning("session %s sent no heartbeat for %.0f s; ended", sid, now - s["heartbeat"])
                self.engine.release_session(sid)
        self.meter.flush_if_changed()

    def failed(self, session_id: str | None, message: str) -> dict:
        fut = self.futures.create(session_id)
        self.futures.fail(fut, message, "user")
        return {"request_id": fut.request_id}

    def close(self) -> None:
        self.scheduler.stop()
        self.meter.flush()


def build_app(service: Service):
    """The Starlette app over `service`."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    engine, cfg = service.engine, service.config

    async def body(request: Request) -> dict:
        try:
            data = await request.json()
        except ValueError:
            raise RequestError("the request body is not JSON") from None
        if not isinstance(data, dict):
            raise RequestError("the request body must be a JSON object")
        return data

    def route(path: str, methods=("POST",)):
        def wrap(fn):
            async def handler(request: Request):
                if cfg.api_key and request.headers.get("x-api-key") != cfg.api_key:
                    return JSONResponse({"error": "invalid or missing X-API-Key"}, status_code=401)
                try:
                    result = await fn(request)
                except RequestError as exc:  # a direct (non-future) call with bad input: a fatal 4xx for the SDK
                    return JSONResponse({"error": str(exc), "category": "user"}, status_code=400)
                return result if isinstance(result, Response) else JSONResponse(result)

            return Route("/api/v1/" + path, handler, methods=list(methods))

        return wrap

    routes = []

    def add(path, methods=("POST",)):
        def deco(fn):
            routes.append(route(path, methods)(fn))
            return fn

        return deco

    @add("client/config")
    async def client_config(request):
        return {"pjwt_auth_enabled": False, "parallel_fwdbwd_chunks": True, "proto_compress_fwdbwd": cfg.compress,
                "fwdbwd_max_chunk_len": cfg.chunk_len, "sample_use_retrieve_futures": False,
                "custom_loss_server_side": False, "sample_join_sampling_session": False}

    @add("healthz", ("GET",))
    async def healthz(request):
        return {"status": "ok"}

    @add("get_server_capabilities", ("GET",))
    async def capabilities(request):
        return {"supported_models": [{"model_name": engine.name, "max_context_length": engine.max_context,
                                      "trainable": True, "sampleable": True}]}

    @add("create_session")
    async def create_session(request):
        data = await body(request)
        sid = f"s{len(service.sessions) + 1}-{secrets.token_hex(4)}"
        service.sessions[sid] = {"created": time.time(), "heartbeat": time.time(), "finished": False,
                                 "tags": data.get("tags") or [], "user_metadata": data.get("user_metadata") or {}}
        return {"type": "create_session", "session_id": sid}

    @add("session_heartbeat")
    async def heartbeat(request):
        sid = (await body(request)).get("session_id")
        s = service.sessions.get(sid)
        if s is None or s["finished"]:
            return JSONResponse({"error": f"session {sid!r} is not active"}, status_code=410)
        s["heartbeat"] = time.time()
        return {"type": "session_heartbeat"}

    @add("sessions/{session_id}/finish")
    async def finish_session(request):
        sid = request.path_params["session_id"]
        s = service.sessions.get(sid)
        if s is not None and not s["finished"]:
            s["finished"] = True
            fut = service.futures.create(sid)  # frees its adapters on the worker, between other requests
            service.scheduler.submit(Job(f"release:{sid}", None, lambda: (engine.release_session(sid), False), fut))
        service.meter.flush()
        return {}

    @add("telemetry")
    async def telemetry(request):
        return {"status": "accepted"}

    @add("cancel_future")
    async def cancel_future(request):
        return {}

    @add("create_model")
    async def create_model(request):
        d = await body(request)
        sid, seq = d.get("session_id"), d.get("model_seq_id")
        model_id = f"{sid}:train:{seq}"
        return service.submit(sid, model_id, None,
                              lambda: engine.create_model(sid, seq, d.get("base_model"), d.get("lora_config"),
                                                          d.get("optimizer_config")),
                              new_model=True, model_id=model_id)

    @add("get_info")
    async def get_info(request):
        return engine.model_info((await body(request)).get("model_id"))

    @add("forward_backward")
    async def forward_backward(request):
        raw = await request.body()
        try:
            req = decode_forward_backward(raw, request.headers.get("content-encoding"))
        except RequestError as exc:
            return service.failed(None, str(exc))
        sid = engine.slots[req.model_id].session_id if req.model_id in engine.slots else None
        return service.submit(sid, req.model_id, req.seq_id, lambda: engine.forward_backward(req), proto=True,
                              model_id=req.model_id)

    def model_request(fn):
        async def handler(request):
            d = await body(request)
            model_id = d.get("model_id")
            sid = engine.slots[model_id].session_id if model_id in engine.slots else None
            return service.submit(sid, model_id, d.get("seq_id"), lambda: fn(d), model_id=model_id)

        return handler

    add("optim_step")(model_request(lambda d: engine.optim_step(d.get("model_id"), d.get("optim_params") or d.get("adam_params"))))
    add("save_weights")(model_request(lambda d: engine.save(d.get("model_id"), d.get("path"), "weights", bool(d.get("overwrite")))))

    @add("save_weights_for_sampler")
    async def save_for_sampler(request):
        d = await body(request)
        if d.get("path"):
            return await model_request(lambda d: engine.save(d["model_id"], d["path"], "sampler_weights"))(request)
        if d.get("sampling_session_seq_id") is None:
            return service.failed(None, "save_weights_for_sampler needs a path (name) or a sampling_session_seq_id")
        return await model_request(lambda d: engine.snapshot_for_sampler(d["model_id"], d["sampling_session_seq_id"]))(request)

    @add("load_weights")
    async def load_weights(request):
        d = await body(request)
        if d.get("model_id"):
            return await model_request(lambda d: engine.load(d.get("path"), bool(d.get("optimizer")), model_id=d["model_id"]))(request)
        sid, seq = d.get("session_id"), d.get("model_seq_id")
        model_id = f"{sid}:train:{seq}"
        return service.submit(sid, model_id, None, lambda: engine.load(
            d.get("path"), bool(d.get("optimizer")), session_id=sid, model_seq_id=seq, base_model=d.get("base_model"),
            optimizer_config=d.get("optimizer_config")),
            new_model=True, model_id=model_id)

    @add("create_sampling_session")
    async def create_sampling_session(request):
        d = await body(request)
        sid = service.session(d.get("session_id"))
        seq = d.get("sampling_session_seq_id")
        sampler_id = await asyncio.to_thread(engine.create_sampler, sid, seq, d.get("base_model"), d.get("model_path"))
        return {"type": "create_sampling_session", "sampling_session_id": sampler_id}

    @add("samplers/{sampler_id}", ("GET",))
    async def get_sampler(request):
        try:
            src = engine.sampler(request.path_params["sampler_id"])
        except RequestError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return {"sampler_id": src.sampler_id, "base_model": engine.name, "model_path": src.model_path}

    @add("asample")
    async def asample(request):
        d = await body(request)
        sampler_id = d.get("sampling_session_id")
        src = engine.samplers.get(sampler_id)
        n = d.get("num_samples", 1)
        try:
            prompt = prompt_tokens(d.get("prompt"))
            unsupported = [k for k in ("topk_prompt_logprobs", "topk_sample_logprobs", "prompt_alt_tokens_k",
                                       "target_prompt_logprobs", "record_stability_info") if d.get(k)]
            if unsupported:
                raise RequestError(f"{unsupported[0]} is not supported by this server (per-token log-probs and "
                                   "prompt log-probs are)")
        except RequestError as exc:
            return service.failed(None, str(exc))
        handle = service.submit(src.session_id if src else None, f"sampler:{sampler_id}", None,
                                lambda: engine.sample(sampler_id, prompt, n, d.get("sampling_params") or {},
                                                      bool(d.get("prompt_logprobs")), d.get("prompt_logprobs_last_n")),
                                proto=True)
        handle["sample_sequence_ids"] = [f"{handle['request_id']}:{i}" for i in range(n if isinstance(n, int) else 1)]
        return handle

    @add("retrieve_future")
    async def retrieve_future(request):
        rid = (await body(request)).get("request_id")
        fut: Future | None = service.futures.get(rid)
        if fut is None:
            return JSONResponse({"error": f"unknown request_id {rid!r}", "category": "user"}, status_code=404)
        if not await service.futures.wait(fut, cfg.poll_seconds):
            return {"type": "try_again", "request_id": rid, "queue_state": "active"}
        if fut.error is not None:
            return {"error": fut.error, "category": fut.category}
        if fut.proto:
            return Response(fut.payload, media_type=PROTO_CONTENT_TYPE)
        return fut.payload

    @add("server_stats", ("GET",))
    async def server_stats(request):
        return {**service.scheduler.stats(), "sessions": len(service.sessions), "training_clients": len(engine.slots),
                "samplers": len(engine.samplers)}

    @add("usage", ("GET",))
    async def usage(request):
        return service.meter.report()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        service.futures.loop = asyncio.get_running_loop()
        yield

    return Starlette(routes=routes, lifespan=lifespan)


def default_output() -> Path:
    from workbench.workspace import workspace_dir

    return workspace_dir() / "runs" / f"tinker-serve-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"


def serve(config: ServeConfig) -> dict:
    """Load the model, serve until SIGINT/SIGTERM, then write the run's manifest (with usage); return it.
    While serving, the run's `progress.json` (state running, pid) carries the usage so far."""
    import uvicorn

    from trainers.tinker_service.engine import Engine
    from trainers.tinker_service.metering import USAGE_FILE, Meter, load_prices
    from trainers.tinker_service.sdk import require_sdk
    from workbench.config import validate
    from workbench.rundir import RunDir

    if not config.base_model:
        raise InputError("--base-model is required: a local model directory (config.json and tokenizer)")
    validate(config)
    require_sdk()
    prices = load_prices(config.prices)
    with socket.socket() as probe:  # fail before loading the model, not after printing the address
        if probe.connect_ex((config.host, config.port)) == 0:
            raise InputError(f"{config.host}:{config.port} is already in use; pick another --port")
    with RunDir(config.output or default_output(), "tinker-serve", config, resumable=True) as run:
        meter = Meter(run.path / USAGE_FILE, prices, config.token_budget, progress=run.progress)
        engine = Engine(config.base_model, config.served_name or config.base_model, run.path / "checkpoints", meter,
                        device=config.device, dtype=config.dtype, micro_batch_tokens=config.micro_batch_tokens,
                        threads=config.threads)
        service = Service(config, engine, meter)
        server = uvicorn.Server(uvicorn.Config(build_app(service), host=config.host, port=config.port,
                                               log_level="warning", timeout_graceful_shutdown=3))
        print(f"tinker service for {engine.name} on http://{config.host}:{config.port} "
              f"(export TINKER_BASE_URL=http://{config.host}:{config.port}); run dir {run.path}", flush=True)
        try:
            server.run()
        except KeyboardInterrupt:  # uvicorn re-raises the SIGTERM/SIGINT it handled; the shutdown was clean
            pass
        finally:
            service.close()
        report = meter.report()
        return run.finish(usage=meter.totals(), sessions=report["sessions"], prices=report["prices"],
                          token_budget=config.token_budget, runtime=loaded_models(config.base_model))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`wb tinker serve`: `--config` and one flag per ServeConfig field."""
    from workbench.config import add_config_arguments

    parser.add_argument("--config", help="YAML file of options; flags given here override it")
    add_config_arguments(parser, ServeConfig)


def run(args: argparse.Namespace) -> int:
    from workbench.config import build_config

    manifest = serve(build_config(ServeConfig, args, args.config))
    print(f"stopped; usage: {json.dumps(manifest['usage'])}")
    return 0


# the Python API's names (`from trainers import serve_tinker, TinkerServeConfig`)
serve_tinker = serve
TinkerServeConfig = ServeConfig
