"""`wb tinker serve`: a local service that speaks Tinker's HTTP API, so the official `tinker` SDK and
tinker-cookbook loops run unchanged against one machine, with every token metered.

    wb tinker serve --base-model PATH --port 8000 --output runs/tinker --api-key tml-alice tml-bob
    TINKER_BASE_URL=http://127.0.0.1:8000 TINKER_API_KEY=tml-alice python my_loop.py

Routes live under /api/v1 (see the SDK's `resources/`). Every request needs an X-API-Key; each key is a
tenant that sees and touches only its own sessions, models, samplers, futures, checkpoints and usage (an
`--admin-key` sees all). With no key configured one is generated and printed. Bodies must be JSON (the
forward_backward protobuf excepted) and are bounded; browser cross-origin requests are refused.
Work-bearing requests return a future handle at once and run on the scheduler's worker (futures.py);
`retrieve_future` long-polls the result. Bad input is a 400 or a failed future of category "user", never
HTTP 402 (the SDK would pause for an hour) nor 5xx/429 (it would retry).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import logging
import secrets
import socket
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from llm.runtime import dtype_option, loaded_models, threads_option
from trainers.tinker_service.futures import Future, FutureTable, Job, Scheduler
from trainers.tinker_service.protocol import (
    NAME_RE,
    PROTO_CONTENT_TYPE,
    Limits,
    RequestError,
    decode_forward_backward,
    get_field,
    parse_tinker_path,
    prompt_tokens,
    show,
)
from workbench.config import RunOptions, option
from workbench.errors import InputError

log = logging.getLogger("wb.tinker")
ADMIN = "admin"  # the tenant of sessions the admin key creates; no keys-file tenant may take the name
JSON_CONTENT_TYPE = "application/json"
MAX_JSON_BYTES = 8 << 20  # a JSON request is a prompt and options: far below this


@dataclass
class ServeConfig(RunOptions):
    base_model: str = option(None, "model to serve: a local transformers directory (or a hub id when online)")
    host: str = option("127.0.0.1", "address to bind")
    port: int = option(8000, "port to listen on", min=1, max=65535)
    served_name: str | None = option(None, "base_model name clients send (default: --base-model as given)")
    api_key: list[str] = option([], "X-API-Key values clients may send, each its own tenant (key1, key2, ...); "
                                    "with no --api-key, --keys-file or --admin-key one key is generated and printed")
    keys_file: str | None = option(None, "YAML or JSON mapping each API key to a tenant name (letters, digits, "
                                         "'.', '_', '-'); a tenant sees only its own sessions, checkpoints and usage")
    admin_key: str | None = option(None, "an X-API-Key that sees and may touch every tenant's sessions and usage")
    output: str | None = option(None, "run directory for checkpoints, usage.json and the manifest "
                                      "(default: $WB_HOME/runs/tinker-serve-TIMESTAMP)")
    prices: str | None = option(None, "YAML with prefill, sample, train: USD per million tokens")
    token_budget: int | None = option(None, "tokens (prefill + sampled + trained) each session may use", min=1)
    chunk_len: int = option(1024, "datums per forward_backward chunk the SDK is told to send", min=1)
    compress: bool = option(True, "ask the SDK to zstd-compress forward_backward bodies")
    max_request_mb: int = option(256, "largest forward_backward body in MiB after decompression; its sparse "
                                      "tensors may expand to at most as much again", min=1)
    micro_batch_tokens: int = option(8192, "padded tokens per forward pass inside a request", min=1)
    device: str | None = option(None, "torch device (default: cuda when available, else cpu)")
    dtype: str = dtype_option()
    threads: int = threads_option()
    tied_unembed: bool = option(False, "put LoRA on lm_head even when it is tied to the input embeddings "
                                       "(by default train_unembed leaves a tied lm_head alone)")
    poll_seconds: float = option(20.0, "how long retrieve_future waits for a result before try_again", min=0.0)
    session_timeout: float = option(600.0, "seconds without a heartbeat after which a session ends and its "
                                           "adapters are freed (the SDK beats every 10 s)", min=1.0)


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the tenant its key maps to; `admin` may act on every tenant's objects."""

    tenant: str
    admin: bool = False

    def may(self, owner: str | None) -> bool:
        return owner is not None and (self.admin or owner == self.tenant)


def load_keys(config: ServeConfig) -> tuple[dict[str, str], bool]:
    """API key -> tenant from --api-key (tenants key1, key2, ...) and --keys-file, plus whether a key was
    generated because none was configured. Raise InputError naming the flag or file for a bad entry."""
    keys: dict[str, str] = {}
    api_keys = [config.api_key] if isinstance(config.api_key, str) else list(config.api_key or [])
    for i, key in enumerate(api_keys, 1):
        keys[_check_key(key, "--api-key")] = f"key{i}"
    if config.keys_file:
        import yaml

        path = Path(config.keys_file)
        try:
            raw = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise InputError(f"{path}: cannot read the keys file ({exc.strerror})") from None
        except yaml.YAMLError:
            raise InputError(f"{path}: not valid YAML or JSON") from None
        if not isinstance(raw, dict) or not raw:
            raise InputError(f"{path}: expected a mapping of API key to tenant name")
        for n, (key, tenant) in enumerate(raw.items(), 1):
            _check_key(key, f"{path} entry {n}")
            if not isinstance(tenant, str) or not NAME_RE.match(tenant) or tenant == ADMIN:
                raise InputError(f"{path} entry {n}: the tenant must be a name of letters, digits, '.', '_' or '-' "
                                 f"(not {ADMIN!r})")
            if key in keys:
                raise InputError(f"{path} entry {n}: the key is given twice")
            keys[key] = tenant
    if config.admin_key is not None:
        if _check_key(config.admin_key, "--admin-key") in keys:
            raise InputError("--admin-key: the admin key must differ from every tenant key")
    generated = not keys and config.admin_key is None
    if generated:
        keys["tml-" + secrets.token_urlsafe(24)] = "default"
    return keys, generated


def _check_key(key: object, where: str) -> str:
    if not isinstance(key, str) or len(key) < 8 or not key.isprintable() or " " in key:
        raise InputError(f"{where}: an API key must be a string of at least 8 printable characters, no spaces")
    return key


class Service:
    """The state behind the routes: keys, sessions (each owned by a tenant), futures, the scheduler, the
    engine and the meter."""

    def __init__(self, config: ServeConfig, engine, meter, keys: dict[str, str] | None = None):
        self.config = config
        self.engine = engine
        self.meter = meter
        self.keys = keys if keys is not None else load_keys(config)[0]  # API key -> tenant
        self.futures = FutureTable()
        self.scheduler = Scheduler(self.futures, on_idle=self.housekeeping)
        self.sessions: dict[str, dict] = {}
        max_bytes = config.max_request_mb << 20
        self.limits = Limits(max_bytes=max_bytes, max_rows=engine.max_context, max_cols=engine.vocab)

    def caller(self, key: str | None) -> Caller | None:
        """The caller a key stands for, or None; compared in constant time so timing reveals no key."""
        if not key:
            return None
        given = key.encode()
        if self.config.admin_key and hmac.compare_digest(given, self.config.admin_key.encode()):
            return Caller(ADMIN, admin=True)
        tenant = None
        for k, t in self.keys.items():
            if hmac.compare_digest(given, k.encode()):
                tenant = t
        return Caller(tenant) if tenant is not None else None

    # ---- ownership: every id a client sends is checked against its tenant ----------------------------

    def owner(self, session_id: object) -> str | None:
        s = self.sessions.get(session_id) if isinstance(session_id, str) else None
        return s["tenant"] if s else None

    def own_session(self, who: Caller, session_id: object) -> str:
        """`session_id` if `who` may use it; else RequestError, the same for another tenant's as for none."""
        if not isinstance(session_id, str):
            raise RequestError("session_id must be a string")
        if not who.may(self.owner(session_id)):
            raise RequestError(f"unknown session_id {show(session_id)}; the SDK creates one with create_session")
        return session_id

    def own_id(self, who: Caller, ident: object, name: str) -> str:
        """The session of a model or sampler id (`SESSION:train:N`, `SESSION:sample:N`) that `who` may
        use; else RequestError naming the field."""
        if not isinstance(ident, str):
            raise RequestError(f"{name} must be a string")
        session_id = ident.split(":", 1)[0]
        if not who.may(self.owner(session_id)):
            raise RequestError(f"unknown {name} {show(ident)}")
        return session_id

    def checkpoint_tenant(self, who: Caller, path: object) -> str:
        """Whose checkpoint directory a `tinker://` path is read from: the caller's; for the admin, the
        tenant of the path's session (its own directory when that session is unknown)."""
        if not who.admin:
            return who.tenant
        try:
            run = parse_tinker_path(path)[0]
        except RequestError:
            return ADMIN
        return self.owner(run.split(":", 1)[0]) or ADMIN

    def session(self, session_id: str | None) -> str:
        if session_id not in self.sessions:
            raise RequestError(f"unknown session_id {show(session_id)}; the SDK creates one with create_session")
        if self.sessions[session_id]["finished"]:
            raise RequestError(f"session {session_id} has finished")
        return session_id

    def submit(self, who: Caller, session_id: str | None, lane: str, seq: int | None, run, proto: bool = False,
               new_model: bool = False, **extra) -> dict:
        """Queue `run()` (-> payload) as a future of `who` on `lane`; return the handle the SDK expects.
        The session must still be active when the job runs."""
        fut = self.futures.create(session_id, who.tenant)

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

    def failed(self, who: Caller, message: str) -> dict:
        fut = self.futures.create(None, who.tenant)
        self.futures.fail(fut, message, "user")
        return {"request_id": fut.request_id}

    def close(self) -> None:
        self.scheduler.stop()
        self.meter.flush()


class Refused(Exception):
    """A request refused before its route runs: (HTTP status, message)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def check_origin(headers, host_header: str | None) -> None:
    """Refuse what a browser sends for another site's page: an Origin that is not this server, or
    Sec-Fetch-Site cross-site. The SDK sends neither header."""
    if headers.get("sec-fetch-site", "").lower() in ("cross-site", "same-site"):
        raise Refused(403, "cross-origin requests are refused")
    origin = headers.get("origin")
    if origin is not None and (origin == "null" or urlsplit(origin).netloc != (host_header or "")):
        raise Refused(403, "cross-origin requests are refused")


def check_content_type(headers, expected: str) -> None:
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != expected:
        raise Refused(415, f"Content-Type must be {expected} (got {show(media or 'none', 40)})")


async def read_body(request, limit: int) -> bytes:
    """The body, refused (413) once it passes `limit` bytes: never buffered beyond that."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Refused(413, f"the body has {declared} bytes; at most {limit} accepted")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise Refused(413, f"the body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_json(raw: bytes) -> dict:
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError):
        raise RequestError("the request body is not JSON") from None
    if not isinstance(data, dict):
        raise RequestError("the request body must be a JSON object")
    return data


def check_sampling_params(params: object) -> dict:
    """Tinker's SamplingParams with every field of the right type (ranges are checked when sampling)."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise RequestError("sampling_params must be an object")
    sp = {f"sampling_params.{k}": v for k, v in params.items()}
    for k in ("max_tokens", "top_k"):
        get_field(sp, f"sampling_params.{k}", int, lo=-1, hi=2**31 - 1)
    get_field(sp, "sampling_params.seed", int, lo=0, hi=2**63 - 1)
    for k in ("temperature", "top_p"):
        get_field(sp, f"sampling_params.{k}", float)
    stop = params.get("stop")
    items = stop if isinstance(stop, list) else [] if stop is None else [stop]
    if not all(isinstance(s, str) or (isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**31)
               for s in items):
        raise RequestError("sampling_params.stop must be a string, a token id or a list of them")
    return params


def build_app(service: Service):
    """The Starlette app over `service`."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    engine, cfg = service.engine, service.config

    async def body(request: Request) -> dict:
        raw = await read_body(request, MAX_JSON_BYTES)
        return await asyncio.to_thread(_parse_json, raw) if len(raw) > 1 << 16 else _parse_json(raw)

    def route(path: str, fn, methods=("POST",), content_type: str = JSON_CONTENT_TYPE):
        async def handler(request: Request):
            try:
                check_origin(request.headers, request.headers.get("host"))
                who = service.caller(request.headers.get("x-api-key"))
                if who is None:
                    raise Refused(401, "invalid or missing X-API-Key")
                if request.method == "POST":
                    check_content_type(request.headers, content_type)
                result = await fn(request, who)
            except Refused as exc:
                return JSONResponse({"error": str(exc), "category": "user"}, status_code=exc.status)
            except RequestError as exc:  # a direct (non-future) call with bad input: a fatal 4xx for the SDK
                return JSONResponse({"error": str(exc), "category": "user"}, status_code=400)
            except Exception:  # noqa: BLE001 - a bug: logged here, never sent to the client
                log.error("%s failed:\n%s", path, traceback.format_exc())
                return JSONResponse({"error": "internal error; the server log has the details",
                                     "category": "server"}, status_code=500)
            return result if isinstance(result, Response) else JSONResponse(result)

        return Route("/api/v1/" + path, handler, methods=list(methods))

    routes = []

    def add(path, methods=("POST",), content_type: str = JSON_CONTENT_TYPE):
        def deco(fn):
            routes.append(route(path, fn, methods, content_type))
            return fn

        return deco

    @add("client/config")
    async def client_config(request, who):
        await body(request)
        return {"pjwt_auth_enabled": False, "parallel_fwdbwd_chunks": True, "proto_compress_fwdbwd": cfg.compress,
                "fwdbwd_max_chunk_len": cfg.chunk_len, "sample_use_retrieve_futures": False,
                "custom_loss_server_side": False, "sample_join_sampling_session": False}

    @add("healthz", ("GET",))
    async def healthz(request, who):
        return {"status": "ok"}

    @add("get_server_capabilities", ("GET",))
    async def capabilities(request, who):
        return {"supported_models": [{"model_name": engine.name, "max_context_length": engine.max_context,
                                      "trainable": True, "sampleable": True}]}

    @add("create_session")
    async def create_session(request, who):
        data = await body(request)
        tags = get_field(data, "tags", list, [])
        metadata = get_field(data, "user_metadata", dict, {})
        sid = f"s-{secrets.token_hex(8)}"  # random, so an id tells nothing about other tenants' sessions
        service.sessions[sid] = {"created": time.time(), "heartbeat": time.time(), "finished": False,
                                 "tenant": who.tenant, "tags": tags, "user_metadata": metadata}
        service.meter.open_session(sid, who.tenant)
        return {"type": "create_session", "session_id": sid}

    @add("session_heartbeat")
    async def heartbeat(request, who):
        sid = get_field(await body(request), "session_id", str, required=True)
        s = service.sessions.get(sid)
        if s is None or s["finished"] or not who.may(s["tenant"]):
            return JSONResponse({"error": f"session {show(sid)} is not active"}, status_code=410)
        s["heartbeat"] = time.time()
        return {"type": "session_heartbeat"}

    @add("sessions/{session_id}/finish")
    async def finish_session(request, who):
        sid = request.path_params["session_id"]
        s = service.sessions.get(sid)
        if s is not None and not s["finished"] and who.may(s["tenant"]):
            s["finished"] = True
            fut = service.futures.create(sid, who.tenant)  # frees its adapters on the worker, between requests
            service.scheduler.submit(Job(f"release:{sid}", None, lambda: (engine.release_session(sid), False), fut))
        service.meter.flush()
        return {}

    @add("telemetry")
    async def telemetry(request, who):
        await body(request)
        return {"status": "accepted"}

    @add("cancel_future")
    async def cancel_future(request, who):
        await body(request)
        return {}

    @add("create_model")
    async def create_model(request, who):
        d = await body(request)
        sid = service.own_session(who, d.get("session_id"))
        seq = get_field(d, "model_seq_id", int, required=True, lo=0, hi=2**31 - 1)
        base = get_field(d, "base_model", str)
        lora, optimizer = get_field(d, "lora_config", dict), get_field(d, "optimizer_config", dict)
        model_id = f"{sid}:train:{seq}"
        return service.submit(who, sid, model_id, None,
                              lambda: engine.create_model(sid, seq, base, lora, optimizer),
                              new_model=True, model_id=model_id)

    @add("get_info")
    async def get_info(request, who):
        model_id = get_field(await body(request), "model_id", str, required=True)
        service.own_id(who, model_id, "model_id")
        return engine.model_info(model_id)

    @add("forward_backward", content_type=PROTO_CONTENT_TYPE)
    async def forward_backward(request, who):
        raw = await read_body(request, service.limits.max_bytes)
        try:  # decompressing and expanding tensors is CPU work: off the event loop, which serves every client
            req = await asyncio.to_thread(decode_forward_backward, raw, request.headers.get("content-encoding"),
                                          service.limits)
            sid = service.own_id(who, req.model_id, "model_id")
        except RequestError as exc:
            return service.failed(who, str(exc))
        return service.submit(who, sid, req.model_id, req.seq_id, lambda: engine.forward_backward(req), proto=True,
                              model_id=req.model_id)

    def model_fields(d: dict, who: Caller) -> tuple[str, str, int | None]:
        """A model request's (model_id, its session, seq_id), checked and owned by `who`."""
        model_id = get_field(d, "model_id", str, required=True)
        return model_id, service.own_id(who, model_id, "model_id"), get_field(d, "seq_id", int, lo=0, hi=2**31 - 1)

    async def model_body(request, who) -> tuple[dict, str, str, int | None]:
        d = await body(request)
        return (d, *model_fields(d, who))

    @add("optim_step")
    async def optim_step(request, who):
        d, model_id, sid, seq = await model_body(request, who)
        params = get_field(d, "optim_params", dict) or get_field(d, "adam_params", dict)
        return service.submit(who, sid, model_id, seq, lambda: engine.optim_step(model_id, params), model_id=model_id)

    @add("save_weights")
    async def save_weights(request, who):
        d, model_id, sid, seq = await model_body(request, who)
        name = get_field(d, "path", str, required=True)
        overwrite = get_field(d, "overwrite", bool, False)
        tenant = service.owner(sid)
        return service.submit(who, sid, model_id, seq, lambda: engine.save(model_id, name, "weights", overwrite, tenant),
                              model_id=model_id)

    @add("save_weights_for_sampler")
    async def save_for_sampler(request, who):
        d, model_id, sid, seq = await model_body(request, who)
        name = get_field(d, "path", str)
        sampler_seq = get_field(d, "sampling_session_seq_id", int, lo=0, hi=2**31 - 1)
        tenant = service.owner(sid)
        if name:
            run = lambda: engine.save(model_id, name, "sampler_weights", True, tenant)  # noqa: E731
        elif sampler_seq is not None:
            run = lambda: engine.snapshot_for_sampler(model_id, sampler_seq)  # noqa: E731
        else:
            raise RequestError("save_weights_for_sampler needs a path (name) or a sampling_session_seq_id")
        return service.submit(who, sid, model_id, seq, run, model_id=model_id)

    @add("load_weights")
    async def load_weights(request, who):
        d = await body(request)
        path = get_field(d, "path", str, required=True)
        optimizer = get_field(d, "optimizer", bool, False)
        tenant = service.checkpoint_tenant(who, path)
        if d.get("model_id") is not None:
            model_id, sid, seq = model_fields(d, who)
            return service.submit(who, sid, model_id, seq, lambda: engine.load(path, optimizer, model_id=model_id,
                                                                               tenant=tenant), model_id=model_id)
        sid = service.own_session(who, d.get("session_id"))
        seq = get_field(d, "model_seq_id", int, required=True, lo=0, hi=2**31 - 1)
        base, opt_config = get_field(d, "base_model", str), get_field(d, "optimizer_config", dict)
        model_id = f"{sid}:train:{seq}"
        return service.submit(who, sid, model_id, None, lambda: engine.load(
            path, optimizer, session_id=sid, model_seq_id=seq, base_model=base, optimizer_config=opt_config,
            tenant=tenant), new_model=True, model_id=model_id)

    @add("create_sampling_session")
    async def create_sampling_session(request, who):
        d = await body(request)
        sid = service.session(service.own_session(who, d.get("session_id")))
        seq = get_field(d, "sampling_session_seq_id", int, 0, lo=0, hi=2**31 - 1)
        base, model_path = get_field(d, "base_model", str), get_field(d, "model_path", str)
        tenant = service.checkpoint_tenant(who, model_path)
        sampler_id = await asyncio.to_thread(engine.create_sampler, sid, seq, base, model_path, tenant)
        return {"type": "create_sampling_session", "sampling_session_id": sampler_id}

    @add("samplers/{sampler_id}", ("GET",))
    async def get_sampler(request, who):
        sampler_id = request.path_params["sampler_id"]
        try:
            service.own_id(who, sampler_id, "sampling_session_id")
            src = engine.sampler(sampler_id)
        except RequestError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return {"sampler_id": src.sampler_id, "base_model": engine.name, "model_path": src.model_path}

    @add("asample")
    async def asample(request, who):
        d = await body(request)
        sampler_id = get_field(d, "sampling_session_id", str, required=True)
        sid = service.own_id(who, sampler_id, "sampling_session_id")
        n = get_field(d, "num_samples", int, 1, lo=1, hi=1024)
        prompt = prompt_tokens(d.get("prompt"))
        params = check_sampling_params(d.get("sampling_params"))
        want_plp = get_field(d, "prompt_logprobs", bool, False)
        last_n = get_field(d, "prompt_logprobs_last_n", int, lo=1, hi=2**31 - 1)
        unsupported = [k for k in ("topk_prompt_logprobs", "topk_sample_logprobs", "prompt_alt_tokens_k",
                                   "target_prompt_logprobs", "record_stability_info") if d.get(k)]
        if unsupported:
            return service.failed(who, f"{unsupported[0]} is not supported by this server (per-token log-probs and "
                                       "prompt log-probs are)")
        handle = service.submit(who, sid, f"sampler:{sampler_id}", None,
                                lambda: engine.sample(sampler_id, prompt, n, params, want_plp, last_n), proto=True)
        handle["sample_sequence_ids"] = [f"{handle['request_id']}:{i}" for i in range(n)]
        return handle

    @add("retrieve_future")
    async def retrieve_future(request, who):
        rid = get_field(await body(request), "request_id", str, required=True)
        fut: Future | None = service.futures.get(rid)
        if fut is None or not who.may(fut.tenant):  # another tenant's future does not exist for this one
            return JSONResponse({"error": f"unknown request_id {show(rid)}", "category": "user"}, status_code=404)
        if not await service.futures.wait(fut, cfg.poll_seconds):
            return {"type": "try_again", "request_id": rid, "queue_state": "active"}
        if fut.error is not None:
            return {"error": fut.error, "category": fut.category}
        if fut.proto:
            return Response(fut.payload, media_type=PROTO_CONTENT_TYPE)
        return fut.payload

    @add("server_stats", ("GET",))
    async def server_stats(request, who):
        mine = {sid for sid, s in service.sessions.items() if who.may(s["tenant"])}
        return {**service.scheduler.stats(), "sessions": len(mine),
                "training_clients": sum(s.session_id in mine for s in list(engine.slots.values())),
                "samplers": sum(s.session_id in mine for s in list(engine.samplers.values()))}

    @add("usage", ("GET",))
    async def usage(request, who):
        return service.meter.report(None if who.admin else who.tenant)

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
    keys, generated = load_keys(config)  # a bad keys file fails before the model loads
    require_sdk()
    prices = load_prices(config.prices)
    with socket.socket() as probe:  # fail before loading the model, not after printing the address
        if probe.connect_ex((config.host, config.port)) == 0:
            raise InputError(f"{config.host}:{config.port} is already in use; pick another --port")
    with RunDir(config.output or default_output(), "tinker-serve", config, resumable=True) as run:
        meter = Meter(run.path / USAGE_FILE, prices, config.token_budget, progress=run.progress)
        engine = Engine(config.base_model, config.served_name or config.base_model, run.path / "checkpoints", meter,
                        device=config.device, dtype=config.dtype, micro_batch_tokens=config.micro_batch_tokens,
                        adapt_tied_unembed=config.tied_unembed, threads=config.threads)
        service = Service(config, engine, meter, keys)
        server = uvicorn.Server(uvicorn.Config(build_app(service), host=config.host, port=config.port,
                                               log_level="warning", timeout_graceful_shutdown=3))
        if generated:  # no key configured: the one generated now is the only way in (never an open server)
            print(f"no --api-key given; clients must send this one: export TINKER_API_KEY={next(iter(keys))}",
                  flush=True)
        print(f"tinker service for {engine.name} on http://{config.host}:{config.port} "
              f"(export TINKER_BASE_URL=http://{config.host}:{config.port}); {len(keys)} tenant key(s)"
              f"{', an admin key' if config.admin_key else ''}; run dir {run.path}", flush=True)
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
