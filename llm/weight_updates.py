"""Weight updates for `wb serve --allow-weight-updates`: the seam between an RL trainer and its generator.

The trainer writes its weights to a file (`torch.save` of a state dict) inside the directory the server was
started with (`--weights-dir`) and POSTs `{"path": ..., "version": N}` to `/v1/weights` with the server's
token (`Authorization: Bearer ...`; versions must increase); the server loads them between decode steps once
the requests already started have finished (new requests wait meanwhile, so no completion mixes two versions)
and stamps every chat completion with the version of the weights that produced it (`weight_version` in the
response). `GET /v1/weights` reports the version.
On GPU hosts the same role is played by SGLang's `/update_weights_from_disk` or TRL's `trl vllm-serve`
(NCCL broadcast); see trainers/RL.md.
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path

LOAD_WAIT_SECONDS = 600.0  # at most this long a load waits for running jobs; then it loads anyway


class WeightError(ValueError):
    """A weight update the server cannot apply (bad body, a path it may not load, keys or shapes that do not
    match, a version that is not newer)."""


TOKEN_ENV = "WB_WEIGHTS_TOKEN"  # where `wb serve` and the trainer's client look for the token
OUTSIDE = "`path` must name a weights file inside the server's --weights-dir"  # one message: no file oracle


class VersionedEngine:
    """Wraps a LocalEngine: the same `generate_batch` / `score`, plus `load(path, version)` and the version of
    the weights each completion came from (in `Completion.extra["weight_version"]`). Only files inside
    `weights_dir` are loaded; each pushed version must be newer than the last one (a push with `restart`
    begins a new sequence: a new or resumed training run)."""

    def __init__(self, engine, weights_dir: str | Path, version: int = 0):
        self.engine = engine
        self.weights_dir = Path(weights_dir).resolve()
        self.version = version
        self.pushed = False  # no version pushed yet: the first push may carry any version
        self._lock = threading.Condition()
        self._loading = 0  # loads waiting for the started jobs to finish
        self._open: set[int] = set()  # ids of jobs with samples admitted and not yet finished
        self._load_order = threading.Lock()  # one load at a time, so versions are checked and set in order

    def __getattr__(self, name: str):
        return getattr(self.engine, name)

    def generate_batch(self, requests: list) -> list:
        with self._lock:
            version = self.version
            out = self.engine.generate_batch(requests)
        for completion in out:
            if not isinstance(completion, Exception):
                completion.extra["weight_version"] = version
        return out

    def accepts_new(self) -> bool:
        return not self._loading

    def admit(self, picks: list) -> None:
        with self._lock:
            for job, _ in picks:
                self._open.add(id(job))
            self.engine.admit(picks)

    def step(self) -> list:
        with self._lock:
            finished = self.engine.step()
            for job in finished:
                job.extra["weight_version"] = self.version
                self._open.discard(id(job))
            self._lock.notify_all()
        return finished

    def release(self, job) -> None:
        """A job dropped before it finished (cancelled) no longer holds a load back."""
        with self._lock:
            self._open.discard(id(job))
            self._lock.notify_all()

    def reset(self) -> None:
        with self._lock:
            self.engine.reset()
            self._open.clear()
            self._lock.notify_all()

    def score(self, ids: list[int]):
        with self._lock:
            return self.engine.score(ids)

    def resolve(self, path: str) -> Path:
        """`path` (absolute, or relative to the weights directory) resolved, symlinks followed; WeightError
        with the same message whether it is outside the directory, missing or not a file."""
        try:
            full = (self.weights_dir / path).resolve()
            inside = full.is_relative_to(self.weights_dir) and full.is_file()
        except (OSError, ValueError):  # a NUL byte, a name too long, a loop of links
            inside = False
        if not inside:
            raise WeightError(OUTSIDE)
        return full

    def load(self, path: str, version: int, restart: bool = False) -> None:
        """Load a state dict saved with `torch.save` from the weights directory into the model and set the
        version; WeightError when the path is refused, the version is not newer than the last pushed one
        (unless `restart`) or the file does not fit the model (the old weights stay in place)."""
        import torch

        with self._load_order:
            if self.pushed and not restart and version <= self.version:
                raise WeightError(f"`version` {version} is not newer than the served version {self.version}; "
                                  "a new or resumed training run sends `restart: true` with its first push")
            full = self.resolve(path)
            try:
                state = torch.load(full, map_location=self.engine.device, weights_only=True)
            except Exception:  # noqa: BLE001 - the loader's message would quote the file's bytes
                raise WeightError(f"{path}: not a state dict saved with torch.save") from None
            model = self.engine.model
            own = model.state_dict()
            if not isinstance(state, dict) or set(state) != set(own):
                missing = sorted(set(own) - set(state))[:3] if isinstance(state, dict) else []
                raise WeightError(f"{path}: the state dict does not match the served model (missing e.g. {missing})")
            bad = [k for k, v in state.items() if not hasattr(v, "shape") or tuple(v.shape) != tuple(own[k].shape)]
            if bad:
                raise WeightError(f"{path}: shape mismatch for {bad[0]} (the served model has "
                                  f"{tuple(own[bad[0]].shape)})")
            with self._lock:
                self._loading += 1
                try:  # the started jobs finish on the old weights; new ones wait (bounded: they end by budget)
                    self._lock.wait_for(lambda: not self._open, timeout=LOAD_WAIT_SECONDS)
                    model.load_state_dict(state)
                    self.version = version
                    self.pushed = True
                finally:
                    self._loading -= 1
                    self._lock.notify_all()


def parse_weight_request(body: object) -> tuple[str, int, bool]:
    """(path, version, restart) of a `/v1/weights` body; WeightError for anything else."""
    if not isinstance(body, dict):
        raise WeightError("the body must be a JSON object with `path` and `version`")
    path, version, restart = body.get("path"), body.get("version"), body.get("restart", False)
    if not isinstance(path, str) or not path or len(path) > 4096:
        raise WeightError("`path` must be the weights file the trainer wrote")
    if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version < 2**63:
        raise WeightError("`version` must be a non-negative integer below 2**63")
    if not isinstance(restart, bool):
        raise WeightError("`restart` must be true or false")
    return path, version, restart


def authorized(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries `Bearer TOKEN` (compared in constant time)."""
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(), token.encode())


def weight_routes(engine: VersionedEngine, token: str) -> list:
    """Starlette routes: POST /v1/weights (load; needs `Authorization: Bearer TOKEN`), GET /v1/weights
    (the current version, open to any client as every completion carries it anyway)."""
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from llm.http_guard import BadRequest, json_body

    def refuse(status: int, message: str, kind: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status,
                            headers=headers)

    async def update(request: Request) -> JSONResponse:
        if not authorized(request.headers.get("authorization"), token):
            return refuse(401, "weight updates need `Authorization: Bearer TOKEN`: the token `wb serve` printed "
                          f"at start, or the one it was given (--weights-token, ${TOKEN_ENV})",
                          "authentication_error", {"WWW-Authenticate": "Bearer"})
        try:
            path, version, restart = parse_weight_request(json_body(await request.body()))
            await run_in_threadpool(engine.load, path, version, restart)
        except (WeightError, BadRequest) as exc:
            return refuse(400, str(exc), "invalid_request_error")
        return JSONResponse({"version": engine.version})

    async def current(request: Request) -> JSONResponse:
        return JSONResponse({"version": engine.version})

    return [Route("/v1/weights", update, methods=["POST"]), Route("/v1/weights", current, methods=["GET"])]
